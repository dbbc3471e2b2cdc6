"""What `python -m hdp source new` infers from a catalogue (unit tier: no database).

Types, keys, the watermark and personal columns from catalogue records of the shapes real
hospital systems have (pinyin names, Chinese comments, change times under other names or
types); and that what it cannot decide is a TODO the manifest loader refuses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hdp.ingest.catalogue import (
    Column,
    Table,
    choose_key,
    choose_watermark,
    personal_kind,
    plan_table,
    type_family,
)
from hdp.ingest.scaffold import Scaffold, render_manifest, render_models_yml, render_staging
from hdp.manifest import load_manifest

TS = "timestamp without time zone"


def _table(*columns: Column, pk: tuple[str, ...] = (), unique=()) -> Table:
    return Table("t", tuple(columns), pk, tuple(unique))


@pytest.mark.parametrize(
    ("declared", "family"),
    [
        ("timestamp without time zone", "timestamp"),
        ("timestamp(3) with time zone", "timestamp"),
        ("datetime", "timestamp"),  # MySQL, SQL Server
        ("date", "date"),
        ("bigint", "integer"),
        ("int(11)", "integer"),
        ("numeric(12,2)", "numeric"),
        ("character varying(20)", "text"),
        ("varchar2(40)", "text"),  # Oracle
        ("text", "text"),
        ("boolean", "boolean"),
        ("jsonb", "other"),
    ],
)
def test_type_family(declared, family):
    assert type_family(declared) == family


def test_key_is_the_primary_key_even_composite():
    table = _table(
        Column("yljgdm", "text", True), Column("ghxh", "bigint", True), pk=("yljgdm", "ghxh")
    )
    assert choose_key(table).columns == ("yljgdm", "ghxh")
    assert choose_key(table).origin == "primary key"


def test_without_primary_key_a_unique_index_of_not_null_columns():
    table = _table(
        Column("bm", "text", False),
        Column("ksdm", "text", True),
        unique=[("bm",), ("ksdm",)],  # bm is unique but may be null: not a key
    )
    key = choose_key(table)
    assert (key.columns, key.origin) == (("ksdm",), "unique index")


def test_no_key_at_all_is_a_todo_that_says_so():
    key = choose_key(_table(Column("a", "text"), unique=[("a",)]))
    assert key.columns == ()
    assert "allow nulls" in key.note
    assert "no unique index" in choose_key(_table(Column("a", "text"))).note


def test_watermark_prefers_the_most_telling_change_time():
    table = _table(Column("czsj", TS), Column("updated_at", TS), Column("gxsj", TS))
    assert choose_watermark(table).column == "updated_at"
    assert choose_watermark(_table(Column("czsj", TS), Column("gxsj", TS))).column == "gxsj"


def test_watermark_under_another_name_or_only_a_comment():
    assert choose_watermark(_table(Column("zhxgsj", TS))).column == "zhxgsj"
    assert choose_watermark(_table(Column("c7", TS, comment="最后修改时间"))).column == "c7"
    # a timestamp that is not a change time is no watermark
    assert choose_watermark(_table(Column("created_at", TS))).column is None


def test_a_change_time_as_text_is_not_a_watermark_and_says_why():
    choice = choose_watermark(_table(Column("xgsj", "character varying(19)")))
    assert choice.column is None
    assert "xgsj" in choice.note and "character varying(19)" in choice.note


def test_no_change_time_names_the_integer_column_it_cannot_use():
    choice = choose_watermark(_table(Column("id", "bigint"), Column("jg", "text")))
    assert choice.column is None
    assert "id" in choice.note and "no full" in choice.note


@pytest.mark.parametrize(
    ("column", "kind"),
    [
        (Column("xm", "text"), "name"),
        (Column("brxm", "text"), "name"),
        (Column("patient_name", "text"), "name"),
        (Column("sfzh", "text"), "id_card"),
        (Column("id_card_no", "text"), "id_card"),
        (Column("lxdh", "text"), "phone"),
        (Column("patient_phone", "text"), "phone"),
        (Column("jtdz", "text"), "address"),
        (Column("home_address", "text"), "address"),
        (Column("c3", "text", comment="患者姓名"), "name"),
        (Column("c4", "text", comment="联系电话"), "phone"),
        (Column("dept_name", "text"), None),
        (Column("drug_name", "text"), None),
        (Column("ksdm", "text", comment="科室代码"), None),
    ],
)
def test_personal_columns(column, kind):
    assert personal_kind(column) == kind


def _scaffold(*tables: Table) -> Scaffold:
    return Scaffold("yyb", "yyb_source", "yy", tuple(plan_table(t) for t in tables))


def test_a_decided_manifest_loads_and_a_todo_is_refused(tmp_path: Path):
    decided = Table(
        "mz_ghxx",
        (Column("ghxh", "bigint", True), Column("brxm", "text"), Column("gxsj", TS)),
        ("ghxh",),
    )
    (tmp_path / "yyb.yml").write_text(render_manifest(_scaffold(decided)), encoding="utf-8")
    manifest = load_manifest("yyb", tmp_path)
    assert manifest.table("mz_ghxx").primary_key == ("ghxh",)
    assert manifest.table("mz_ghxx").watermark == "gxsj"
    assert manifest.contains_personal_data is True

    keyless = Table("jy_jg", (Column("jgz", "text"), Column("gxsj", TS)))
    (tmp_path / "yyb.yml").write_text(
        render_manifest(_scaffold(decided, keyless)), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="table jy_jg: primary_key is not set"):
        load_manifest("yyb", tmp_path)

    no_watermark = Table("ks", (Column("ksdm", "text", True),), ("ksdm",))
    (tmp_path / "yyb.yml").write_text(render_manifest(_scaffold(no_watermark)), encoding="utf-8")
    with pytest.raises(ValueError, match="table ks: watermark is not set"):
        load_manifest("yyb", tmp_path)


def test_staging_pseudonymises_names_cards_phones_and_drops_addresses():
    table = Table(
        "zy_brry",
        (
            Column("zyh", "text", True),
            Column("xm", "text"),
            Column("sfzh", "text"),
            Column("lxdh", "text"),
            Column("jtdz", "text"),
            Column("rysj", "text"),
            Column("czsj", TS),
        ),
        ("zyh",),
    )
    scaffold = _scaffold(table)
    sql = render_staging(scaffold, scaffold.plans[0])
    assert "matching_key('name', mpi_match_name('xm')) }} as xm_key" in sql
    assert "matching_key('id_card', normalize_cn_id_card('sfzh')) }} as sfzh_key" in sql
    assert "matching_key('phone'" in sql and "as lxdh_key" in sql
    # the address is named in a comment only, never selected
    assert [line for line in sql.splitlines() if "jtdz" in line] == [
        "        -- jtdz: address, not passed on (TODO: keep only what a model needs)"
    ]
    # a text timestamp, parsed by the one definition the gate's `parses: timestamp` check calls
    assert "{{ parse_cn_timestamp('rysj') }} as rysj," in sql
    assert "latest_version('source', 'zyh', 'czsj')" in sql
    # the key comes from the manifest (macro manifest_key), never typed in the model
    assert "published_rows('raw_yyb', 'zy_brry') }}" in sql


def test_composite_key_reaches_published_rows_latest_version_and_the_tests():
    table = Table(
        "mz_ghxx",
        (Column("yljgdm", "text", True), Column("ghxh", "bigint", True), Column("gxsj", TS)),
        ("yljgdm", "ghxh"),
    )
    scaffold = _scaffold(table)
    sql = render_staging(scaffold, scaffold.plans[0])
    assert "published_rows('raw_yyb', 'mz_ghxx') }}" in sql
    assert "latest_version('source', ['yljgdm', 'ghxh'], 'gxsj')" in sql
    models = render_models_yml(scaffold)
    assert "yljgdm::text || '|' || ghxh::text" in models


CONTRACTS = {
    "std_encounter.yml": {
        "version": 2,
        "models": [
            {
                "name": "std_encounter",
                "columns": [
                    {
                        "name": "encounter_id",
                        "data_type": "text",
                        "constraints": [{"type": "not_null"}],
                        "description": "The key.",
                    },
                    {"name": "source_system", "data_type": "text"},
                    {"name": "institution_id", "data_type": "text"},
                    {"name": "started_at", "data_type": "timestamp"},
                    {"name": "source_record_id", "data_type": "text"},
                    {"name": "encounter_key", "data_type": "text"},
                    {
                        "name": "patient_name",
                        "data_type": "text",
                        "meta": {"direct_identifier": True},
                    },
                ],
            }
        ],
    },
    # fed by one seed per institution, not by a mapping model
    "std_institution.yml": {
        "version": 2,
        "models": [{"name": "std_institution", "columns": [{"name": "institution_id"}]}],
    },
}


def _project_with_contracts(root: Path) -> Path:
    import yaml

    (root / "dbt_project" / "models" / "standard").mkdir(parents=True)
    for name, doc in CONTRACTS.items():
        (root / "dbt_project" / "models" / "standard" / name).write_text(yaml.safe_dump(doc))
    seeds = root / "dbt_project" / "seeds" / "mapping" / "his"
    seeds.mkdir(parents=True)
    (seeds / "map_his__institution.csv").write_text("institution_id\nH001\n")
    return root


def test_mapping_skeletons_follow_the_contracts_and_are_parked(tmp_path: Path):
    from hdp.ingest.scaffold import scaffold_files

    root = _project_with_contracts(tmp_path)
    table = Table("mz_ghxx", (Column("ghxh", "bigint", True), Column("gxsj", TS)), ("ghxh",))
    scaffold = Scaffold("yyb", "yyb_source", "yy", (plan_table(table),), institution="H002")
    files = scaffold_files(scaffold, root)
    mapping = Path("dbt_project/models/mapping/yyb")
    assert mapping / "map_yyb__encounter.sql.todo" in files
    assert not [p for p in files if "map_yyb__institution" in p.name]  # seed-fed entity
    assert not [p for p in files if p.name.endswith("__encounter.sql")]  # never enabled as is
    sql = files[mapping / "map_yyb__encounter.sql.todo"]
    selected = re.findall(r" as (\w+),?  --", sql)
    assert selected == [
        "encounter_id",
        "source_system",
        "institution_id",
        "started_at",
        "source_record_id",
        "encounter_key",
        "patient_name",
    ]
    assert "cast(null as text) as encounter_id,  -- TODO required; The key." in sql
    assert "'yyb'::text as source_system," in sql
    assert "'H002'::text as institution_id," in sql
    assert "cast(null as timestamp) as started_at,  -- TODO" in sql
    assert "(ghxh::text)::text as source_record_id,  -- TODO" in sql
    assert "('H002:yyb:' || ghxh::text)::text as encounter_key," in sql
    assert "cast(null as text) as patient_name  -- TODO a direct identifier" in sql
    assert "ref('stg_yyb__mz_ghxx')" in sql
    seed = Path("dbt_project/seeds/mapping/yyb/map_yyb__source_system.csv")
    assert files[seed].splitlines()[1].startswith("yyb,H002,database,")
    # without an institution the source-system seed is parked too
    files = scaffold_files(Scaffold("yyb", "c", "yy", scaffold.plans), root)
    assert seed.with_name(seed.name + ".todo") in files and seed not in files


def test_the_default_watermark_check_follows_the_manifest_watermark():
    """A scaffolded source's change time is rarely updated_at: the default not-null check of
    the watermark must check the table's own (it checked updated_at whatever the manifest)."""
    from hdp.config import load_settings
    from hdp.quality.checks import for_table, load_catalogue
    from hdp.quality.gate import build_expectations

    checks = for_table(load_catalogue(load_settings().expectations_dir, "yyb"), "mz_ghxx")
    built = build_expectations(checks, ["ghxh", "gxsj"], ["ghxh"], watermark="gxsj")
    columns = [e.column for e in built if e.meta["check_id"] == "watermark.not_null"]
    assert columns == ["gxsj"]


def test_a_dialect_without_a_reader_and_a_missing_connection_say_what_to_do(
    monkeypatch, tmp_path, capsys
):
    from hdp.cli import main
    from hdp.ingest.catalogue import CatalogueError, read_catalogue
    from hdp.warehouse.database import source_dialect

    monkeypatch.setenv("HDP_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_LIS_B", "mssql://reader@127.0.0.1:9/lis")
    assert source_dialect("lis_b") == "mssql"
    with pytest.raises(CatalogueError, match="no catalogue reader for 'mssql' sources yet"):
        read_catalogue(None, "mssql", "lis")
    assert main(["source", "new", "lis_b", "--from-connection", "lis_b"]) == 2
    assert "no catalogue reader for 'mssql'" in capsys.readouterr().err
    monkeypatch.delenv("AIRFLOW_CONN_LIS_B")
    assert main(["source", "new", "lis_b", "--from-connection", "lis_b"]) == 2
    assert "no connection lis_b: set AIRFLOW_CONN_LIS_B" in capsys.readouterr().err
    assert main(["source", "new", "Bad-Name", "--from-connection", "lis_b"]) == 2
