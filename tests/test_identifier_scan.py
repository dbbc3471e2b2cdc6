"""Log hygiene: run the pipeline (extract, gate, dbt build, identity store), then look for every
identifier of the simulated patients in every log, report, Data Docs page, dbt artefact and in
every table an analyst or an auditor can read, and in what dbt stores in intermediate. Only the
landing, staging's views over it and the encrypted identity store may hold them."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace
from pathlib import Path

import pytest
from psycopg2 import errors, sql

from hdp.config import load_settings
from hdp.security import roles as security
from hdp.warehouse.database import Login, connect

# schemas an identifier may live in: the landing, staging's views over it and the encrypted
# identity store (the patient index in intermediate keeps keyed HMACs only)
IDENTIFIER_SCHEMAS = {"raw_his", "staging", "hdp_private"}
# schemas no analyst may read
RESTRICTED_SCHEMAS = IDENTIFIER_SCHEMAS | {"intermediate"}
# runs of letters, digits and CJK: an identifier embedded in text lies inside one run
RUN = re.compile(r"[0-9A-Za-z\u3400-\u9fff\uf900-\ufaff\uff10-\uff5a]+")
CJK = re.compile(r"[\u3400-\u9fff]")
# a keyed HMAC (hdp_private.pseudonym: 64 hex characters): its 10-digit windows match one of
# thousands of 10-digit MRNs by chance (std_person holds ~50 per patient, ~1e8 windows in all),
# and a run of hex is no clear identifier. All-digit runs are still scanned.
HMAC = re.compile(r"(?=[0-9a-f]*[a-f])[0-9a-f]{64}")
# dbt-postgres names its temporary relations `<model>__dbt_tmp` + the clock as HHMMSSffffff:
# at 10:00:01.034970 (or HH:00:00.103497) that clock holds a 10-digit MRN of the simulator
# (0000100000 + patient number), and the server log quotes every such name
DBT_TMP = re.compile(r"tmp([01]\d|2[0-3])[0-5]\d[0-5]\d\d{6}")
# a float as Python writes it (17 significant digits) in a logged statement, e.g. duration_s =
# 0.0033696800001052907: its fraction holds a 10-digit MRN by chance; no identifier is a fraction
FLOAT_FRACTION = re.compile(r"(?<=\d)\.\d{12,}")
ADDRESS_TAIL = 5


def _windows(run: str, n: int) -> set[str]:
    return {run[i : i + n] for i in range(len(run) - n + 1)}


class Identifiers:
    """The simulator's identifier values, and a scan that is linear in the text."""

    def __init__(self, exact: set[str], names: set[str], addresses: set[str]) -> None:
        self.exact = exact  # card numbers, phones, MRNs
        self.exact_lengths = sorted({len(v) for v in exact})
        self.names = names  # full names of 3 or more characters (short ones collide with text)
        self.name_lengths = sorted({len(v) for v in names})
        self.addresses = addresses
        # addresses are found by their last few characters first (linear), then confirmed
        self.address_tails: dict[str, set[str]] = {}
        for address in addresses:
            self.address_tails.setdefault(address[-ADDRESS_TAIL:], set()).add(address)

    def found_in(self, text: str) -> set[str]:
        hits: set[str] = set()
        text = FLOAT_FRACTION.sub(".", text)
        for run in set(RUN.findall(text)):
            if HMAC.fullmatch(run) or DBT_TMP.fullmatch(run):
                continue
            if run in self.exact:
                hits.add(run)
            elif len(run) > self.exact_lengths[0]:
                for n in self.exact_lengths:
                    hits.update(_windows(run, n) & self.exact)
            if CJK.search(run):
                for n in self.name_lengths:
                    hits.update(_windows(run, n) & self.names)
                for tail in _windows(run, ADDRESS_TAIL) & self.address_tails.keys():
                    hits.update(a for a in self.address_tails[tail] if a in run)
        return hits

    def contexts(self, text: str, hits: set[str], width: int = 40, limit: int = 3) -> list[str]:
        """Where each hit sits, with the value itself masked: enough to tell a leak (a log
        line, a key, a message) from digits that belong to a number or a hash."""
        found = []
        for value in sorted(hits):
            start = text.find(value)
            if start >= 0:
                before = text[max(0, start - width) : start]
                after = text[start + len(value) : start + len(value) + width]
                found.append(f"{before}<ID>{after}".replace("\n", " "))
            if len(found) >= limit:
                break
        return found


@pytest.fixture(scope="module")
def pipeline(built_warehouse):
    """The session's built warehouse (tests/conftest.py), restored, with the identity store."""
    lg, build = built_warehouse
    assert "ERROR=0" in build.stdout.replace(" ", "")
    wh = connect(lg.warehouse)
    security.refresh_patient_identity(wh, security.identity_key())
    wh.close()
    return lg, build


def simulated_identifiers(lg) -> Identifiers:
    """Every identifier value of the simulated HIS's patients (and the clean values behind the
    injected defects), read with the simulator owner's login."""
    src = connect(lg.his_owner)
    with src.cursor() as cur:
        cur.execute("select mrn, name, id_card_no, phone, address from his.patients")
        rows = cur.fetchall()
        # the clean values behind injected defects (typos, full-width characters)
        cur.execute(
            "select column_name, clean_value from sim.defect_manifest "
            "where table_name = 'patients' and clean_value is not null"
        )
        clean = cur.fetchall()
    src.close()
    exact, names, addresses = set(), set(), set()
    for mrn, name, id_card_no, phone, address in rows:
        exact.update(v.strip() for v in (mrn, id_card_no, phone) if v and len(v.strip()) >= 8)
        names.add(re.sub(r"[\s\u3000]", "", name or ""))
        if address and len(address.strip()) >= ADDRESS_TAIL:
            addresses.add(address.strip())
    for column, value in clean:
        if column == "name":
            names.add(re.sub(r"[\s\u3000]", "", value))
        elif column in ("id_card_no", "phone", "mrn") and len(value.strip()) >= 8:
            exact.add(value.strip())
    names = {n for n in names if len(n) >= 3}
    assert len(exact) > 100 and len(names) > 20 and len(addresses) > 20
    return Identifiers(exact, names, addresses)


@pytest.fixture(scope="module")
def identifiers(pipeline) -> Identifiers:
    lg, _ = pipeline
    return simulated_identifiers(lg)


def test_the_scan_finds_identifiers_where_they_are(identifiers, pipeline):
    """The scanner itself works: it finds the identifiers in the landing table's dump."""
    lg, _ = pipeline
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select string_agg(t::text, E'\\n') from (select * from raw_his.patients limit 300) t"
        )
        dump = cur.fetchone()[0]
    wh.close()
    found = identifiers.found_in(dump)
    assert len(found & identifiers.exact) > 300
    assert found & identifiers.names and found & identifiers.addresses
    sample = next(iter(identifiers.exact))
    assert identifiers.found_in(f"log line: patient {sample}, done") == {sample}
    assert identifiers.found_in(f"x86{sample}0y") == {sample}
    # a keyed HMAC whose hex happens to hold a digit-only identifier is no leak; the same
    # digits anywhere else still are
    digits = next(v for v in sorted(identifiers.exact) if v.isdigit())
    hmac = ("a" + digits).ljust(64, "b")
    assert identifiers.found_in(f"keys {hmac} {hmac[::-1]}") == set()
    assert identifiers.found_in(f"keys {hmac}c") == {digits}
    # so is dbt's temporary relation named at a clock time that reads as one; a digit more,
    # or another word, and it is an identifier again
    mrn = next(v for v in sorted(identifiers.exact) if v.isdigit() and v.startswith("00001"))
    clock = "13" + mrn  # 13:00:00.1ddddd as HHMMSSffffff
    assert identifiers.found_in(f'create temporary table "stg_x__dbt_tmp{clock}"') == set()
    assert identifiers.found_in(f"mrn tmp{clock}7") == {mrn}
    assert identifiers.found_in(f"mrn key{clock}") == {mrn}
    # a float's long fraction is no identifier; the same digits after a word still are
    assert identifiers.found_in(f"duration_s = 0.00336968{mrn}907 where") == set()
    assert identifiers.found_in(f"duration_s = x00336968{mrn}907 where") == {mrn}


def _files_to_scan() -> list[Path]:
    from hdp.warehouse.clusters import Cluster
    from hdp.warehouse.mariadb import mariadb_server

    settings = load_settings()
    cluster = Cluster.for_home(settings.home, settings.pg_port)
    # the servers' own storage holds the (simulated) sources' rows, as a hospital's would: not
    # an artefact of the platform; their logs are scanned
    skip = {cluster.data_dir.resolve(), settings.secrets_dir.resolve()}
    files = [cluster.log_file]
    mariadb = mariadb_server(settings)  # Hospital B's HIS (None: an external server)
    if mariadb is not None:
        skip.add(mariadb.data_dir.resolve())
        if mariadb.log_file.exists() and not mariadb.log_file.is_relative_to(settings.home):
            files.append(mariadb.log_file)
    roots = [settings.home, settings.dbt_project_dir / "target", settings.dbt_project_dir / "logs"]
    for root in roots:
        for path in root.rglob("*"):
            resolved = path.resolve()
            if path.is_file() and not any(resolved.is_relative_to(s) for s in skip):
                files.append(path)
    return files


def test_no_identifier_in_any_log_report_or_artefact(identifiers, pipeline):
    files = _files_to_scan()
    names = {p.name for p in files}
    # the scan covers what it must: the servers' logs, dbt's logs and artefacts, GX Data Docs
    assert {"postgres.log", "mariadb.log", "dbt.log", "run_results.json", "index.html"} <= names
    assert not any(p.name == "ib_logfile0" for p in files)  # MariaDB's storage is not scanned
    leaks = {}
    for path in files:
        if path.stat().st_size > 200_000_000:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        found = identifiers.found_in(text)
        if found:
            leaks[str(path)] = (sorted(found)[:5], identifiers.contexts(text, found))
    assert not leaks, f"identifiers found outside the restricted schemas: {leaks}"


def test_no_identifier_in_any_table_outside_the_restricted_schemas(identifiers, pipeline):
    lg, _ = pipeline
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema <> all(%s) "
            "and table_schema not in ('pg_catalog', 'information_schema') "
            "order by 1, 2",
            (sorted(IDENTIFIER_SCHEMAS),),
        )
        tables = cur.fetchall()
        assert ("marts", "fct_encounter") in tables and ("audit", "quality_result") in tables
        assert ("intermediate", "int_mpi__registrations") in tables
        leaks = {}
        for schema, table in tables:
            cur.execute(
                sql.SQL("select coalesce(string_agg(t::text, E'\\n'), '') from {}.{} t").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
            found = identifiers.found_in(cur.fetchone()[0])
            if found:
                leaks[f"{schema}.{table}"] = sorted(found)[:5]
        # the identity store holds them encrypted only
        cur.execute("select string_agg(t::text, E'\\n') from hdp_private.patient_identity t")
        assert not identifiers.found_in(cur.fetchone()[0])
    wh.close()
    assert not leaks, f"identifiers found outside the restricted schemas: {leaks}"


def test_column_profiles_are_scanned_and_keep_shapes_only_for_identifiers(identifiers, pipeline):
    """audit.column_profile (scanned above with every audit table) profiles the patients'
    identifier columns by shape and counts only: no min, max or years in clear."""
    lg, _ = pipeline
    wh = connect(lg.warehouse)
    with wh.cursor() as cur:
        cur.execute(
            "select column_name, is_identifier, min_value, max_value, year_median, top_shape "
            "from audit.column_profile where source = 'his' and table_name = 'patients'"
        )
        profile = {r[0]: r[1:] for r in cur.fetchall()}
        cur.execute("select string_agg(p::text, E'\\n') from audit.column_profile as p")
        dump = cur.fetchone()[0]
    wh.close()
    for column in ("mrn", "name", "id_card_no", "phone", "address", "birth_date"):
        assert profile[column][:4] == (True, None, None, None), column
    assert profile["id_card_no"][4]  # its shape is kept
    assert not identifiers.found_in(dump)


def test_an_analyst_cannot_reach_a_restricted_schema(pipeline):
    lg, _ = pipeline
    password = secrets.token_urlsafe(16)
    admin = connect(replace(lg.admin, dbname=lg.warehouse.dbname))
    with admin, admin.cursor() as cur:
        security.create_login(cur, "t_scan_analyst", password, security.ANALYST)
    admin.close()
    analyst = Login("t_scan_analyst", password, lg.warehouse.host, lg.warehouse.port, "hdp")
    conn = connect(analyst)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema = any(%s)",
            (sorted(RESTRICTED_SCHEMAS),),
        )
        # information_schema lists only what the role has some privilege on
        assert cur.fetchall() == []
        for schema, table in [
            ("raw_his", "patients"),
            ("staging", "stg_his__patients"),
            ("intermediate", "int_his__patient_key_map"),
            ("hdp_private", "patient_identity"),
        ]:
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(
                    sql.SQL("select * from {}.{} limit 1").format(
                        sql.Identifier(schema), sql.Identifier(table)
                    )
                )
        cur.execute("select count(*) from marts.dim_patient")
        assert cur.fetchone()[0] > 0
    conn.close()


def test_an_identifier_in_a_key_reaches_no_audit_table(identifiers, pipeline, tmp_path):
    """A file source keyed by the patients' ID card numbers (a pharmacy's sales export without
    a sale id, tests/test_record_keys.py), with a bad row the gate quarantines: every table and
    view of the audit schema is scanned, and none holds a card number (audit.row_issue keeps a
    keyed hash of the key). Before keys were hashed, the quarantine quoted the card in clear."""
    from tests.test_record_keys import BAD, SALES, _csv, _drop, _ingest, _landing_schema, _project

    lg, _ = pipeline
    src = connect(lg.his_owner)
    with src.cursor() as cur:
        cur.execute(
            "select id_card_no from his.patients where id_card_no ~ '^[0-9]{17}[0-9X]$' "
            "order by patient_id limit %s",
            (len(SALES),),
        )
        cards = [c for (c,) in cur.fetchall()]
    src.close()
    rows = [(day, card, *rest) for (day, _, *rest), card in zip(SALES, cards, strict=True)]
    root = _project(tmp_path)
    _landing_schema(lg)
    _drop(root, "sales_20240302.csv", _csv(rows, "gbk"))
    gates, _ = _ingest(lg, root, "scan-run-1")
    assert [g.rows_quarantined for g in gates] == [1] and BAD[3] == "两盒"
    wh = connect(lg.warehouse)
    try:
        with wh.cursor() as cur:
            cur.execute("select string_agg(t::text, E'\\n') from raw_sales.sales t")
            assert set(cards) <= identifiers.found_in(cur.fetchone()[0])  # the scan finds them
            cur.execute(
                "select table_name from information_schema.tables where table_schema = 'audit'"
            )
            audit = [n for (n,) in cur.fetchall()]
            assert {"row_issue", "quarantined_row", "quality_result", "file_load"} <= set(audit)
            leaks = {}
            for name in audit:
                cur.execute(
                    sql.SQL(
                        "select coalesce(string_agg(t::text, E'\\n'), '') from audit.{} t"
                    ).format(sql.Identifier(name))
                )
                found = identifiers.found_in(cur.fetchone()[0])
                if found:
                    leaks[name] = len(found)
            cur.execute("drop schema raw_sales cascade")  # the other tests' scans skip it
        wh.commit()
    finally:
        wh.close()
    assert not leaks, f"identifiers in the audit: {leaks}"
