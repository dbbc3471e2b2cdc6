"""The data-quality page mounted in the Airflow UI (see plugins/hdp_quality_plugin.py).

Server-rendered HTML with inline styles, so it works on a hospital network with no internet.
It shows aggregates only: statuses, counts and check names, never a row value. Batch ids,
load errors and run ids are still operational detail: every route needs an Airflow login (the
auth manager's JWT, as a bearer token or the UI's `_token` cookie, exactly as Airflow's own API
checks it), there is no unauthenticated OpenAPI schema, and the page reads the warehouse as
`hdp_quality` (group hdp_quality_reader: the audit tables it shows, nothing else).
"""

from __future__ import annotations

from html import escape

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
from airflow.api_fastapi.core_api.security import requires_access_view
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from hdp.quality import history as quality_history
from hdp.warehouse.database import connect, logins

# Airflow mounts plugin apps as they are: without this dependency the page answered anyone.
app = FastAPI(
    title="HDP data quality",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    dependencies=[Depends(requires_access_view(AccessView.WEBSITE))],
)

STATUS_COLOURS = {
    "passed": "#1a7f37",
    "published": "#1a7f37",
    "withheld": "#9a6700",
    "rejected": "#cf222e",
    "failed": "#cf222e",
    "loaded": "#9a6700",
    "loading": "#9a6700",
    "held": "#bc4c00",
    "warn": "#9a6700",
    "fail": "#cf222e",
}

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;min-width:720px}
th,td{border-bottom:1px solid #d0d7de;padding:6px 10px;text-align:left;font-size:14px}
th{background:#f6f8fa}
.badge{color:#fff;border-radius:10px;padding:2px 9px;font-size:12px;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#656d76;font-size:13px}
"""


def _badge(status: str, label: str | None = None) -> str:
    colour = STATUS_COLOURS.get(status, "#656d76")
    text = escape(label or status)
    return f'<span class="badge" style="background:{colour}">{text}</span>'


CHANGE_STATUS = {"new": "rejected", "persisting": "loaded", "resolved": "passed"}


def _spark(points: list[tuple[int, str, int | None, int]]) -> str:
    """Rows per batch as bars (red when the batch was rejected)."""
    if not points:
        return ""
    top = max((p[2] or 0) for p in points) or 1
    bars = []
    for i, (_batch, status, rows, _failed) in enumerate(points):
        height = max(2, int(28 * (rows or 0) / top))
        colour = "#cf222e" if status in ("rejected", "failed", "held") else "#57606a"
        bars.append(
            f'<rect x="{i * 9}" y="{30 - height}" width="7" height="{height}" fill="{colour}"/>'
        )
    return f'<svg width="{len(points) * 9}" height="30">{"".join(bars)}</svg>'


def _freshness_html(wh) -> str:
    from hdp.ingest import freshness

    rows = [
        "<tr>"
        f"<td>{escape(f.source)}</td>"
        f"<td>{_badge('rejected', 'STALE') if f.is_stale else _badge('passed', 'fresh')}</td>"
        f'<td class="muted">{escape(str(f.last_delivery or "never"))[:19]}</td>'
        f'<td class="num">{"" if f.age_hours is None else f"{f.age_hours:.1f} h"}</td>'
        f'<td class="num">{f.max_age_hours:g} h</td>'
        "</tr>"
        for f in freshness.latest(wh)
    ]
    if not rows:
        return "<p class='muted'>No freshness check has run yet.</p>"
    head = (
        "<tr><th>source</th><th>status</th><th>last delivery</th><th>age</th><th>deadline</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _quarantine_html(wh) -> str:
    rows = [
        "<tr>"
        f"<td>{escape(src)}.{escape(table)}</td><td>{escape(check)}</td><td>{escape(cat)}</td>"
        f'<td class="num">{held}</td><td class="num">{released}</td><td class="num">{warned}</td>'
        "</tr>"
        for src, table, check, cat, held, released, warned in quality_history.quarantine(wh)
    ]
    if not rows:
        return "<p class='muted'>No row has failed a row-level check.</p>"
    head = (
        "<tr><th>table</th><th>check</th><th>category</th><th>held</th><th>released</th>"
        "<th>flagged (warn)</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _run_html(wh, run_id: str | None) -> str:
    if not run_id:
        return ""
    rows = [
        "<tr>"
        f"<td>{escape(src)}.{escape(table)}</td><td>{_badge(status)}</td>"
        f'<td class="num">{"" if n is None else n}</td>'
        f'<td class="num">{"" if held is None else held}</td>'
        f"<td>{escape(error or '')}</td>"
        "</tr>"
        for src, table, status, n, held, error in quality_history.run_batches(wh, run_id)
    ]
    head = (
        "<tr><th>table</th><th>status</th><th>rows</th><th>quarantined</th>"
        "<th>failed checks</th></tr>"
    )
    body = f"<table>{head}{''.join(rows)}</table>" if rows else "<p class='muted'>No batch.</p>"
    return f"<h2>This run: {escape(run_id)}</h2>{body}"


def _refused_html(wh) -> str:
    rows = [
        "<tr>"
        f"<td>{escape(f.source)}</td><td>{_badge('rejected', 'refused')}</td>"
        f"<td>{escape(f.file_name)}</td><td>{escape(f.reason or '')}</td>"
        f'<td class="muted">{escape(str(f.refused_at))[:19]}</td>'
        "</tr>"
        for f in quality_history.refused_files(wh)
    ]
    if not rows:
        return "<p class='muted'>No delivered file has been refused.</p>"
    head = "<tr><th>source</th><th>status</th><th>file</th><th>reason</th><th>when</th></tr>"
    note = (
        "<p class='muted'>Nothing of a refused file is loaded; the sender re-sends it "
        "(a new content loads as a new delivery).</p>"
    )
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _held_html(wh) -> str:
    """Deliveries the guard holds for review (hdp.quality.guard), with the commands."""
    from hdp.quality import guard

    rows = [
        "<tr>"
        f"<td>{escape(d.source)}.{escape(d.table)}</td><td>{_badge('held')}</td>"
        f'<td class="num">{d.batch_id}</td><td>{escape(d.file_name or "")}</td>'
        f'<td class="num">{d.keys_replaced} of {d.rows}</td><td>{escape(d.reason)}</td>'
        f"<td><code>{escape(guard.release_command(d.batch_id))}</code><br>"
        f"<code>{escape(guard.reject_command(d.batch_id))}</code></td>"
        "</tr>"
        for d in guard.held(wh)
    ]
    if not rows:
        return "<p class='muted'>No delivery is held for review.</p>"
    head = (
        "<tr><th>table</th><th>status</th><th>batch</th><th>file</th><th>keys replaced</th>"
        "<th>why</th><th>decide</th></tr>"
    )
    note = (
        "<p class='muted'>A held delivery would replace published records with values of "
        "another shape: it is neither published nor lost until a person releases or rejects "
        "it.</p>"
    )
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _profile_spark(points: list[tuple[int, float, float | None]]) -> str:
    """A column's last profiles: pattern share as bars, empty share as a red line."""
    if not points:
        return ""
    bars, line = [], []
    for i, (_batch, empty, pattern) in enumerate(points):
        height = max(1, int(26 * (pattern or 0)))
        bars.append(
            f'<rect x="{i * 9}" y="{28 - height}" width="7" height="{height}" fill="#57606a"/>'
        )
        line.append(f"{i * 9 + 3},{28 - int(26 * empty)}")
    path = f'<polyline points="{" ".join(line)}" fill="none" stroke="#cf222e" stroke-width="1.5"/>'
    return f'<svg width="{len(points) * 9}" height="30">{"".join(bars)}{path}</svg>'


def _anomalies_html(wh) -> str:
    """Profile monitors that fired lately, each with its column's trend."""
    from hdp.quality import profiles

    anomalies = profiles.recent_anomalies(wh)
    trends: dict[tuple[str, str, str], str] = {}
    rows = []
    for a in anomalies:
        key = (a.source, a.table, a.column)
        if key not in trends:
            trends[key] = _profile_spark(profiles.trend(wh, *key))
        rows.append(
            "<tr>"
            f"<td>{escape(a.source)}.{escape(a.table)}</td><td>{escape(a.column)}</td>"
            f"<td>{_badge(a.status)}</td><td>{escape(a.check_id)}</td>"
            f'<td class="num">{a.batch_id}</td><td>{escape(a.observed)}</td>'
            f"<td>{trends[key]}</td>"
            "</tr>"
        )
    if not rows:
        return "<p class='muted'>No column profile has jumped beyond its history.</p>"
    head = (
        "<tr><th>table</th><th>column</th><th>status</th><th>monitor</th><th>batch</th>"
        "<th>observed</th><th>pattern share ▮ / empty share ━ (last 10)</th></tr>"
    )
    note = (
        "<p class='muted'>Shapes write digits as 9, letters as a, other scripts as z: a "
        "profile never holds a value of a column that could identify someone "
        "(audit.column_profile).</p>"
    )
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _cleaning_html(wh) -> str:
    rows = [
        "<tr>"
        f"<td>{escape(rule)}</td><td>{escape(table)}.{escape(column)}</td>"
        f"<td>{escape(fixes)}</td>"
        f'<td class="num">{changed}</td><td class="num">{checked}</td>'
        "</tr>"
        for rule, table, column, fixes, checked, changed in quality_history.cleaning_counts(wh)
    ]
    if not rows:
        return "<p class='muted'>No dbt build yet.</p>"
    head = (
        "<tr><th>rule</th><th>column</th><th>what it fixes</th><th>values changed</th>"
        "<th>rows checked</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def render(wh, run_id: str | None = None) -> str:
    tables = quality_history.latest(wh)
    changed = quality_history.changes(wh)
    trends = quality_history.trend(wh)
    rows = []
    for t in tables:
        rows.append(
            "<tr>"
            f"<td>{escape(t.source)}</td><td>{escape(t.table)}</td><td>{_badge(t.status)}</td>"
            f'<td class="num">{t.batch_id}</td>'
            f'<td class="num">{"" if t.rows is None else t.rows}</td>'
            f'<td class="num">{t.checks_passed}</td><td class="num">{t.checks_failed}</td>'
            f"<td>{_spark(trends.get((t.source, t.table), []))}</td>"
            f'<td class="muted">{escape(str(t.finished_at or ""))[:19]}</td>'
            "</tr>"
        )
    change_rows = [
        "<tr>"
        f"<td>{_badge(CHANGE_STATUS[c.change], c.change)}</td>"
        f"<td>{escape(c.source)}.{escape(c.table)}</td><td>{escape(c.check)}</td>"
        f"<td>{escape(c.column or '')}</td><td>{escape(c.observed or '')}</td>"
        "</tr>"
        for c in changed
    ]
    if change_rows:
        head = (
            "<tr><th>change</th><th>table</th><th>check</th><th>column</th><th>observed</th></tr>"
        )
        changes_html = f"<table>{head}{''.join(change_rows)}</table>"
    else:
        changes_html = "<p class='muted'>No failing check, and nothing resolved since then.</p>"
    from hdp.manifest import all_manifests

    loaded = {t.source for t in tables}
    sources = sorted(loaded | {m.source for m in all_manifests()})
    verdict = {
        s: all(t.status in ("passed", "published") for t in tables if t.source == s)
        for s in sources
    }
    summary = " ".join(
        f"{escape(s)} "
        + (
            _badge("passed" if ok else "rejected", "ok" if ok else "failing")
            if s in loaded
            else _badge("loading", "not loaded yet")
        )
        for s, ok in verdict.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Data quality · HDP</title><style>{STYLE}</style></head><body>
<h1>Data quality</h1>
<p>Sources: {summary or "no loads yet"}</p>
{_run_html(wh, run_id)}
<h2>Latest batch per table</h2>
<table><tr><th>source</th><th>table</th><th>status</th><th>batch</th><th>rows</th>
<th>checks ✓</th><th>✗</th><th>rows per batch (last 10)</th><th>finished</th></tr>
{"".join(rows)}</table>
<h2>Held deliveries</h2>
{_held_html(wh)}
<h2>Refused files (latest 20)</h2>
{_refused_html(wh)}
<h2>Column profile anomalies</h2>
{_anomalies_html(wh)}
<h2>Changes since the previous batch</h2>
{changes_html}
<h2>Source freshness</h2>
{_freshness_html(wh)}
<h2>Row-level quarantine</h2>
{_quarantine_html(wh)}
<h2>Cleaning rules (latest dbt build)</h2>
{_cleaning_html(wh)}
<p class="muted">Rows are listed by check, never by value; after a fix,
<code>python -m hdp quality replay --source &lt;source&gt;</code> releases rows that now pass.</p>
<p class="muted">Full results: GX Data Docs under $HDP_HOME/quality; every check is stored in
audit.quality_result.</p>
</body></html>"""


@app.get("/", response_class=HTMLResponse)
def page(run_id: str | None = None, dag_id: str | None = None) -> str:
    wh = connect(logins().quality_reader)
    try:
        return render(wh, run_id)
    finally:
        wh.close()


@app.get("/api/status")
def status() -> dict:
    wh = connect(logins().quality_reader)
    try:
        return {
            "tables": [
                t.__dict__ | {"finished_at": str(t.finished_at)} for t in quality_history.latest(wh)
            ],
            "changes": [c.__dict__ for c in quality_history.changes(wh)],
        }
    finally:
        wh.close()
