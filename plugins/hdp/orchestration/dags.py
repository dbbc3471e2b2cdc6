"""DAG builders: one generic ingest DAG per source manifest, and the dbt transform DAG.

DAG files in dags/ only call these. Nothing here touches a database at import or parse time.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from airflow.sdk import AssetAny, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from hdp.config import load_settings
from hdp.manifest import SourceManifest, all_manifests, load_manifest
from hdp.orchestration.assets import marts_asset, raw_asset
from hdp.orchestration.common import (
    START_DATE,
    WAREHOUSE_CONN_ID,
    connection_login,
    default_args,
)
from hdp.runtime.standard import registry_env


def run_extract(manifest: SourceManifest, table: str, run_id: str) -> dict:
    """The extract task. An error that would repeat unchanged (schema drift, a missing table, a
    type mismatch) fails the task without retries; a lost connection keeps them."""
    from hdp.ingest.extract import connect_source, extract_table, is_deterministic
    from hdp.warehouse.database import connect

    src = connect_source(connection_login(manifest.conn_id))
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        result = extract_table(src, wh, manifest, table, run_id)
    except Exception as exc:
        if is_deterministic(exc):
            raise AirflowFailException(_refusal(manifest, table, exc)) from None
        raise
    finally:
        src.close()
        wh.close()
    if result.already_published:
        print(
            f"{manifest.source}.{table} batch {result.batch_id} of run {run_id} is already "
            "published: a published batch is immutable, nothing is extracted again "
            "(trigger a new run to load what changed)"
        )
    return {
        "table": table,
        "batch_id": result.batch_id,
        "rows": result.rows_written,
        "already_published": result.already_published,
        # MySQL sources: rows per column whose zero date landed as NULL (counts, never values)
        **({"zero_dates": result.zero_dates} if result.zero_dates else {}),
    }


def _refusal(manifest: SourceManifest, table: str, exc: BaseException) -> str:
    """The message of a deterministic extract failure: the platform's own refusals say what
    changed (names and types only); a database error is named by class and SQLSTATE, since
    its text can quote a row's value (patient data)."""
    from hdp.ingest.extract import ExtractRefused

    if isinstance(exc, ExtractRefused):
        detail = str(exc)
    else:
        cause = exc.__cause__ or exc
        detail = (
            f"{type(cause).__name__} (SQLSTATE {getattr(cause, 'pgcode', None) or '-'}) while "
            f"loading {manifest.source}.{table}"
        )
    return f"{detail} [not retried: the same rows and schema would fail again]"


def load_metadata(manifest: SourceManifest) -> tuple[str, ...]:
    """The load metadata columns of the source's raw tables (the default schema check's)."""
    from hdp.ingest.files import file_metadata
    from hdp.quality.gate import METADATA

    if manifest.kind == "files":
        return tuple(name for name, _ in file_metadata(manifest))
    return METADATA


# One gate of a source at a time, on whichever worker: each writes the GX file context in the
# shared quality folder (its suite, asset and checkpoint), and two gates of one table at once
# (every LIS file is raw_lis.results) failed with GX's ResourceFreshnessAggregateError ("suite
# has changed since it has last been saved") in the distributed run (issue 19). Extracts and
# loads stay parallel.
GATES_AT_ONCE = 1


def run_gate(manifest: SourceManifest, loaded: dict) -> dict:
    """The gate task. A failed gate raises hdp.quality.gate.QualityGateFailed, the one class of
    a gate's verdict (hdp.orchestration.notify recognises it): a verdict on the data, which a
    retry would not change, so every gate task runs with retries=0."""
    from hdp.quality.gate import validate_batch
    from hdp.warehouse.database import connect

    settings = load_settings()
    login = connection_login(WAREHOUSE_CONN_ID)
    wh = connect(login)
    try:
        if _is_published(wh, loaded["batch_id"]):
            print(
                f"{manifest.source}.{loaded['table']} batch {loaded['batch_id']} is already "
                "published: a published batch is immutable, nothing to validate again"
            )
            return {**loaded, "checks": 0, "quarantined": 0}
        result = validate_batch(
            wh,
            warehouse_url=login.url,
            quality_dir=settings.quality_dir,
            expectations_dir=settings.expectations_dir,
            batch_id=loaded["batch_id"],
            source=manifest.source,
            table=loaded["table"],
            primary_key=list(manifest.table(loaded["table"]).primary_key),
            watermark=manifest.table(loaded["table"]).watermark,
            metadata=load_metadata(manifest),
        )
    finally:
        wh.close()
    return {**loaded, "checks": len(result.checks), "quarantined": result.rows_quarantined}


def _is_published(wh, batch_id: int) -> bool:
    with wh.cursor() as cur:
        cur.execute(
            "select status = 'published' from audit.load_batch where batch_id = %s", (batch_id,)
        )
        row = cur.fetchone()
    wh.rollback()
    return bool(row and row[0])


def run_freshness(manifest: SourceManifest, run_id: str) -> None:
    from hdp.ingest.freshness import check_freshness
    from hdp.warehouse.database import connect

    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        verdict = check_freshness(
            wh, source=manifest.source, run_id=run_id, max_age_hours=manifest.freshness_hours
        )
    finally:
        wh.close()
    if verdict.is_stale:
        raise AirflowFailException(verdict.message())
    print(verdict.message())


def run_publish(manifest: SourceManifest, run_id: str) -> dict:
    from hdp.quality.gate import PublishBlocked, build_reports, publish_run
    from hdp.warehouse.database import connect

    settings = load_settings()
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        rows = publish_run(
            wh, source=manifest.source, run_id=run_id, tables=[t.name for t in manifest.tables]
        )
    except PublishBlocked as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        wh.close()
        print(f"quality report: {build_reports(settings.quality_dir)}")
    if not rows:
        print(
            f"{manifest.source} run {run_id} is already published: nothing to publish again "
            "(a published batch is immutable)"
        )
    print(f"raw_{manifest.source} published rows per table: {rows}")
    return rows


def build_ingest_dag(source: str):
    manifest: SourceManifest = load_manifest(source)

    @dag(
        dag_id=f"hdp_ingest_{source}",
        description=f"Extract {manifest.description} into raw_{source}, gate with GX",
        schedule=manifest.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["hdp", "ingest", source],
        default_args=default_args(manifest.owner),
        doc_md=f"""
### Ingest `{source}` → `raw_{source}`
{manifest.description}.

1. **extract** (one mapped task per table): rows changed since the last *published* batch
   (watermark column per table, less a {manifest.lookback_minutes:g}-minute look-back window;
   versions already published are not stored again) are streamed by binary COPY into
   `raw_{source}.<table>`, with `_batch_id`, `_extracted_at`, `_source` on every row;
   `audit.load_batch` records rows read/written/skipped, duration and status. A retry
   replaces the batch: no duplicates. A published batch is immutable: rerunning its run
   extracts nothing. A per-table lock keeps two extracts of one table apart; schema drift
   fails the task without retrying.
2. **gate** (one per table): the checks catalogue `expectations/{source}.yml`. Row-level
   checks quarantine bad rows (`audit.row_issue`: the key's keyed hash, check, fault; never
   a value); batch-level checks (Great Expectations, volume) block or warn. A blocking
   failure rejects the batch and fails the task with the failing checks named.
3. **freshness**: alerts when `{source}` has delivered nothing for {manifest.freshness_hours:g} h.
4. **publish** (write-audit-publish): promotes every batch of the run in one transaction, or
   none when a gate failed (siblings are *withheld*), then emits the asset
   `hdp://warehouse/raw_{source}`, which triggers `hdp_transform`. Recovery after a failed
   gate: fix the cause, rerun that table's extract and gate, then publish (its log lists the
   commands); the withheld tables need no rerun.

Review: **Data quality** in the menu (`/hdp-quality/`), and GX Data Docs under
`$HDP_HOME/quality/gx/uncommitted/data_docs/local_site/`.
""",
    )
    def ingest():
        @task(map_index_template="{{ task.op_kwargs['table'] }}")
        def extract(table: str) -> dict:
            return run_extract(manifest, table, get_current_context()["run_id"])

        @task(
            retries=0,
            map_index_template="{{ task.op_kwargs['loaded']['table'] }}",
            max_active_tis_per_dag=GATES_AT_ONCE,
        )
        def gate(loaded: dict) -> dict:
            return run_gate(manifest, loaded)

        @task(retries=0, trigger_rule="all_done")
        def freshness() -> None:
            run_freshness(manifest, get_current_context()["run_id"])

        # all_done: with a failed gate, publish still runs to withhold the run's other batches
        @task(outlets=[raw_asset(source)], trigger_rule="all_done")
        def publish() -> dict:
            return run_publish(manifest, get_current_context()["run_id"])

        loaded = extract.expand(table=[t.name for t in manifest.tables])
        gated = gate.expand(loaded=loaded)
        loaded >> freshness()
        gated >> publish()

    return ingest()


def _dbt_env(settings) -> dict[str, str]:
    """Each dbt task's own environment: the standard layer's registry (found from the
    project's mapping files, hdp.runtime.standard), and in embedded mode the transformer's
    password: no Airflow process holds it (hdp.runtime.env.airflow_env); each dbt task renders it
    from the connection hdp_transformer when it starts, into its own dbt invocation only
    (Airflow masks it in the rendered fields). Compose gives the profile's variables to the
    workers."""
    from hdp.runtime.env import TRANSFORMER_CONN_ID

    env = registry_env(settings.dbt_project_dir)
    if settings.embedded:
        env["HDP_WAREHOUSE_PASSWORD"] = f"{{{{ conn.{TRANSFORMER_CONN_ID}.password }}}}"
    return env


# Built in one task before the per-model ones (build_transform_dag): views and seeds.
VIEW_LAYERS = (
    "resource_type:seed",
    "path:models/staging",
    "path:models/mapping",
    "path:models/standard",
)


def run_change_check(manifest_path: Path) -> bool:
    """True when the transform has something to build; the inputs go to XCom for
    run_record_build. An operator forces a build with the params full_refresh or force."""
    from hdp.warehouse.builds import current_inputs, decide, last_complete_build
    from hdp.warehouse.database import connect

    context = get_current_context()
    params = context["params"]
    forced = ", ".join(name for name in ("full_refresh", "force") if _truthy(params.get(name)))
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        inputs = current_inputs(wh, manifest_path)
        decision = decide(inputs, last_complete_build(wh), forced=forced)
    finally:
        wh.close()
    print(("build: " if decision.build else "skip: ") + decision.reason)
    context["ti"].xcom_push(key="inputs", value=asdict(inputs))
    return decision.build


def run_record_build() -> None:
    from hdp.warehouse.builds import BuildInputs, record_complete_build
    from hdp.warehouse.database import connect

    context = get_current_context()
    pulled = context["ti"].xcom_pull(task_ids="changes", key="inputs")
    if not pulled or not pulled.get("project"):
        print("no inputs recorded (no dbt manifest to compare): the next run builds again")
        return
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        record_complete_build(wh, context["run_id"], BuildInputs(**pulled))
    finally:
        wh.close()


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def build_transform_dag():
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
    from cosmos.operators.local import DbtBuildLocalOperator

    settings = load_settings()
    project_dir: Path = settings.dbt_project_dir
    manifest_path = project_dir / "target" / "manifest.json"
    # rendering without a manifest runs `dbt ls`, which parses the standard layer's unions
    os.environ.update(registry_env(project_dir))

    @dag(
        dag_id="hdp_transform",
        description="dbt: staging → intermediate → marts (star schema), one task per model",
        # after ANY source publishes: sources deliver at their own times (a file source may
        # have nothing new), and a rebuild is idempotent; max_active_runs queues the rest
        schedule=AssetAny(*(raw_asset(m.source) for m in all_manifests())),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["hdp", "transform", "dbt"],
        default_args=default_args("data-platform"),
        params={
            "full_refresh": Param(
                False,
                type="boolean",
                description="Rebuild the incremental facts from scratch (dbt --full-refresh).",
            ),
            "allow_shrink": Param(
                False,
                type="boolean",
                description=(
                    "Accept marts that lose more than HDP_MAX_MART_SHRINK_SHARE of their rows "
                    "(an intended purge). Off: such a build rolls back and fails naming the table."
                ),
            ),
            "force": Param(
                False,
                type="boolean",
                description=(
                    "Build even when nothing was published since the last complete build "
                    "(off: such a run skips its dbt tasks, see the task changes)."
                ),
            ),
        },
        doc_md="""
### Transform: dbt star schema
Runs when a source's raw asset has been updated by a published ingest run. `changes` first
compares what the run would read (published batches with rows, released quarantine, the dbt
project, the day) with the last complete build (`audit.transform_build`): when nothing changed,
every dbt task is skipped and the marts asset is not updated; trigger with `force` (or
`full_refresh`) on to build anyway. `dbt_views` builds
the seeds and the view layers (staging, mapping, standard) with their tests in one `dbt build`;
then each intermediate and mart model is a task (astronomer-cosmos), each followed by its
tests. Staging reads only rows of batches whose status is `published` in `audit.load_batch`,
less quarantined rows. Marts enforce
contracts.

Five facts are incremental. `fct_encounter` and `fct_diagnosis` rebuild the rows whose inputs
were published (or released from quarantine) since their last build, less the
`reprocess_window_hours` window; `fct_prescription_line`, `fct_dispensing` and `fct_lab_result`,
whose inputs are intermediate tables rebuilt in full, write only the rows whose `row_hash` is new
or changed. To rebuild all five from scratch (after changing their logic), trigger this DAG with
`full_refresh` on.

**Shrink guard**: a mart whose build would lose more than `HDP_MAX_MART_SHRINK_SHARE` (default
20%) of its last build's rows rolls back, so analysts keep the published table, and its task
fails naming the table and both counts. Look at the source's batches first (a withheld or
emptied batch); if the shrink is intended, trigger this DAG with `allow_shrink` on.
""",
    )
    def transform():
        @task.short_circuit
        def changes() -> bool:
            """Anything to build? The skip of a run with nothing new (hdp.warehouse.builds)."""
            return run_change_check(manifest_path)

        @task(outlets=[marts_asset()])
        def marts_published() -> None:
            """Every model built and tested: downstream DAGs (the procurement report) run, and
            the build's inputs are recorded for the next run's change check."""
            run_record_build()

        profile_config = ProfileConfig(
            profile_name="hdp",
            target_name="warehouse",
            profiles_yml_filepath=settings.dbt_profiles_dir / "profiles.yml",
        )
        # "{{ params.full_refresh }}": Cosmos reads the rendered string as a boolean
        operator_args = {
            "install_deps": False,
            "full_refresh": "{{ params.full_refresh }}",
            # the shrink guard (macros/record_transform.sql) yields only when asked to
            "vars": {"allow_mart_shrink": "{{ params.allow_shrink }}"},
            "env": _dbt_env(settings),
        }
        # Seeds and the view layers (staging, mapping, standard: no data copied) in one
        # `dbt build` with their own tests: a task each would be most of the DAG and most of its
        # time (per-task start-up), for views that take milliseconds to create.
        views = DbtBuildLocalOperator(
            task_id="dbt_views",
            project_dir=str(project_dir),
            profile_config=profile_config,
            invocation_mode=InvocationMode.DBT_RUNNER,
            select=list(VIEW_LAYERS),
            # only tests whose every parent is a view or a seed; the others run with the
            # intermediate or mart model they also test
            indirect_selection="cautious",
            **operator_args,
        )
        models = DbtTaskGroup(
            group_id="dbt",
            project_config=ProjectConfig(
                dbt_project_path=project_dir,
                manifest_path=manifest_path if manifest_path.exists() else None,
            ),
            profile_config=profile_config,
            execution_config=ExecutionConfig(
                execution_mode=ExecutionMode.LOCAL, invocation_mode=InvocationMode.DBT_RUNNER
            ),
            render_config=RenderConfig(
                load_method=LoadMode.DBT_MANIFEST if manifest_path.exists() else LoadMode.AUTOMATIC,
                # the view layers are the task above
                exclude=list(VIEW_LAYERS),
                # one `dbt build` task per model (model then its tests): half the tasks
                test_behavior=TestBehavior.BUILD,
                # relationship tests span two models: run them once both exist
                should_detach_multiple_parents_tests=True,
            ),
            operator_args=operator_args,
        )
        changes() >> views >> models
        models >> marts_published()

    return transform()


# ---------------------------------------------------------------------------------------------
# File sources (kind: files in the manifest; hdp.ingest.files): list new files → load each (mapped)
# → gate each → freshness → publish each file's batch.
# ---------------------------------------------------------------------------------------------


def run_list_files(manifest: SourceManifest) -> list[str]:
    from hdp.ingest.files import drop_dir, list_new_files
    from hdp.warehouse.database import connect

    folder = drop_dir(manifest)
    if not folder.is_dir():
        print(f"drop folder {folder} does not exist yet: no file of {manifest.source}")
        return []
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        paths = list_new_files(wh, manifest, folder)
    finally:
        wh.close()
    print(f"{len(paths)} new file(s) of {manifest.source} in {folder}")
    return [str(p) for p in paths]


def run_file_load(manifest: SourceManifest, path: str, run_id: str) -> dict:
    from hdp.ingest.files import FileRefused, ingest_file
    from hdp.warehouse.database import connect

    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        result = ingest_file(wh, manifest, Path(path), run_id)
    except FileRefused as exc:
        # a verdict on the file (a link, an undecodable file, another header), recorded in
        # audit.file_load: not a failure of this task, so the run's other files still go
        # through their gates and publish; refused_files fails the run and alerts
        print(f"refused (see refused_files): {exc}")
        name = Path(path).name
        return {
            "table": manifest.tables[0].name,
            "file": name,
            "batch_id": None,
            "rows": 0,
            "status": "refused",
        }
    finally:
        wh.close()
    return {
        "table": manifest.tables[0].name,
        "file": result.file_name,
        "batch_id": result.batch_id,
        "rows": result.rows,
        "status": result.status,
    }


def run_file_gate(manifest: SourceManifest, loaded: dict) -> dict:
    if loaded.get("batch_id") is None:  # content loaded before: nothing to validate
        return loaded
    return run_gate(manifest, loaded)


def run_file_refusals(manifest: SourceManifest, loaded: list[dict], run_id: str) -> None:
    """Fail (and so alert, without retry) when a file of the run was refused or not validated;
    the other files are gated and published regardless (README: one refused file holds back no
    other). A leaf task, so the run turns red although publish succeeded."""
    from hdp.warehouse.database import connect

    refused = sorted(r["file"] for r in loaded if r and r.get("status") == "refused")
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        with wh.cursor() as cur:
            cur.execute(
                "select coalesce(f.file_name, b.run_id), b.status from audit.load_batch as b "
                "left join audit.file_load as f on f.batch_id = b.batch_id "
                "where b.source = %s and left(b.run_id, length(%s)) = %s "
                "and b.status <> 'published' order by 1",
                (manifest.source, f"{run_id}:", f"{run_id}:"),
            )
            withheld = [f"{name} ({status})" for name, status in cur.fetchall()]
        held = held_in_run(wh, manifest.source, run_id)
    finally:
        wh.close()
    if refused or withheld:
        raise AirflowFailException(
            f"{manifest.source}: {len(refused)} file(s) refused, nothing of them loaded: "
            f"{', '.join(refused) or '-'}; {len(withheld)} file(s) loaded but not published: "
            f"{', '.join(withheld) or '-'}. The other files of the run are published. Why: "
            "audit.file_load.error and the load or gate task's log; ask the sender to re-send."
            + "".join(f" {message}" for message in held)
        )
    print(f"every file of {manifest.source} in this run was published")


def held_in_run(wh, source: str, run_id: str) -> list[str]:
    """What to tell of each delivery of this run the guard holds for review (reason, commands)."""
    from hdp.quality import guard

    return [
        guard.held_message(d.source, d.table, d.batch_id, d.reason)
        for d in guard.held(wh, source=source)
        if d.run_id.startswith(f"{run_id}:")
    ]


def run_file_publish(manifest: SourceManifest, run_id: str) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from hdp.ingest.files import FilesWithheld, publish_files
    from hdp.quality.gate import PublishBlocked, build_reports
    from hdp.warehouse.database import connect

    settings = load_settings()
    wh = connect(connection_login(WAREHOUSE_CONN_ID))
    try:
        rows = publish_files(wh, manifest=manifest, run_id=run_id)
    except FilesWithheld as exc:
        message = str(exc) + "".join(f" {m}" for m in held_in_run(wh, manifest.source, run_id))
        if not exc.published:
            raise AirflowFailException(message) from exc
        # the validated files are published: succeed, so the raw asset triggers the transform;
        # the leaf task refused_files turns the run red and names the withheld ones
        print(message)
        rows = exc.published
    except PublishBlocked as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        wh.close()
        print(f"quality report: {build_reports(settings.quality_dir)}")
    print(f"raw_{manifest.source} published rows per file: {rows}")
    if not rows:
        # no asset event: nothing new for the transform
        raise AirflowSkipException(f"no new file of {manifest.source} to publish")
    return rows


def build_file_ingest_dag(source: str):
    """The ingest DAG of a file source (dags/sources/<source>.yml with kind: files)."""
    manifest: SourceManifest = load_manifest(source)
    table = manifest.tables[0].name

    @dag(
        dag_id=f"hdp_ingest_{source}",
        description=f"Load {manifest.description} into raw_{source}, gate with GX",
        schedule=manifest.schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["hdp", "ingest", source],
        default_args=default_args(manifest.owner),
        doc_md=f"""
### Ingest `{source}` file drops → `raw_{source}.{table}`
{manifest.description}.

1. **list_files**: files `{manifest.pattern}` in `{manifest.drop_dir}` (under `$HDP_HOME`
   unless absolute) whose content (sha256) has not been loaded and validated yet.
2. **load** (one mapped task per file): encoding detected (BOM → UTF-8-SIG, UTF-8, GBK),
   header checked against the manifest, every line COPYed as text into `raw_{source}.{table}`
   with `_batch_id`, `_file_name`, `_line_no`; a line with the wrong number of fields is kept
   (`_malformed`, `_raw_line`). One batch per file in `audit.load_batch`, one record per
   content in `audit.file_load`. A retry replaces the file's rows; a known content is skipped.
   Only regular files of the folder are read: a symbolic or hard link, a path through `..`
   is refused unread. A refused file is recorded and loads nothing; the others go on.
3. **gate** (one per file): the checks catalogue `expectations/{source}.yml`; malformed lines,
   results without a patient and unparseable numbers are quarantined (`audit.row_issue`).
4. **freshness**: alerts when `{source}` has delivered nothing for {manifest.freshness_hours:g} h.
5. **publish**: each validated file is published on its own (files are independent
   deliveries); emits `hdp://warehouse/raw_{source}`, which triggers `hdp_transform`.
6. **refused_files**: fails (and alerts) when a file of the run was refused; the run is then
   red although its other files were published.
""",
    )
    def ingest():
        @task(retries=0)
        def list_files() -> list[str]:
            return run_list_files(manifest)

        @task(map_index_template="{{ task.op_kwargs['path'].rsplit('/', 1)[-1] }}")
        def load(path: str) -> dict:
            return run_file_load(manifest, path, get_current_context()["run_id"])

        @task(
            retries=0,
            map_index_template="{{ task.op_kwargs['loaded']['file'] }}",
            max_active_tis_per_dag=GATES_AT_ONCE,
        )
        def gate(loaded: dict) -> dict:
            return run_file_gate(manifest, loaded)

        @task(retries=0, trigger_rule="all_done")
        def freshness() -> None:
            run_freshness(manifest, get_current_context()["run_id"])

        @task(outlets=[raw_asset(source)], trigger_rule="all_done")
        def publish() -> dict:
            return run_file_publish(manifest, get_current_context()["run_id"])

        @task(retries=0, trigger_rule="all_done")
        def refused_files(loaded: list[dict]) -> None:
            run_file_refusals(manifest, list(loaded), get_current_context()["run_id"])

        loaded = load.expand(path=list_files())
        gated = gate.expand(loaded=loaded)
        published = publish()
        gated >> published >> refused_files(loaded)
        loaded >> freshness()

    return ingest()
