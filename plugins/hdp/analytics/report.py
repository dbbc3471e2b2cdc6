"""The procurement report: one static HTML file for the pharmacy director, readable offline.

`render_report(conn, out_dir)` reads only the drug marts (consumption, ABC/XYZ, antibiotic
indicators, drug shares, the forecast and the reorder points it implies, dim_medication: none
holds a patient key)
and writes `procurement_<date>.html` and `procurement_latest.html` with plotly charts; the
plotly.js bundle is inlined once, so the file opens without a network.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

TOP_ATC_GROUPS = 6
TOP_DRUGS = 15
FORECAST_DRUGS = 10
HISTORY_MONTHS = 24
DENSITY_TARGET = 40.0  # DDD per 100 patient-days, general tertiary hospitals
OUTPATIENT_SHARE_TARGET = 0.20

# Explicit column lists: the report can only ever show what is named here.
QUERIES = {
    "consumption": """
        select month, medication_key, atc_level1, department_key, quantity, spend
        from marts.mart_drug_consumption_monthly""",
    # the institutions' products; the group's rows (institution_id 'ALL', by ATC code) are for
    # a group report, not yet written
    "abc_xyz": """
        select medication_key, annual_value, abc_class, xyz_class
        from marts.mart_drug_abc_xyz
        where institution_id <> 'ALL'""",
    # the reorder points of the forecast (hdp.analytics.forecast_mart), not of history
    "reorder": """
        select r.medication_key, m.generic_name, r.on_hand, r.on_order, r.safety_stock,
               r.reorder_point, r.suggested_order_qty, r.expiring_30d_qty, r.method,
               r.backtest_wape
        from marts.mart_reorder_forecast r
        left join marts.dim_medication m using (medication_key)
        where r.needs_reorder
        order by r.suggested_order_qty desc nulls last""",
    "antibiotic": """
        select month, department_key, inpatient_ddd_j01, patient_days,
               ddd_per_100_patient_days, target_ddd_per_100_patient_days,
               outpatient_prescriptions, outpatient_with_antibiotic,
               outpatient_antibiotic_share, target_outpatient_share
        from marts.mart_antibiotic_use_monthly
        where institution_id <> 'ALL'""",
    "shares": """
        select month, department_key, drug_spend, essential_drug_spend, total_revenue
        from marts.mart_drug_share_monthly
        where institution_id <> 'ALL'""",
    "medication": "select medication_key, generic_name from marts.dim_medication",
    "forecast": """
        select medication_key, month, forecast_quantity, lower_80, upper_80, method,
               backtest_wape, last_month_treatment, generated_at
        from marts.mart_drug_forecast""",
}
# written by the forecast task, not by dbt: missing until it has run once
FORECAST_MARTS = {"forecast": "marts.mart_drug_forecast", "reorder": "marts.mart_reorder_forecast"}
TEXT_COLUMNS = {
    "medication_key",
    "generic_name",
    "atc_level1",
    "department_key",
    "abc_class",
    "xyz_class",
    "method",
    "last_month_treatment",
    "generated_at",
}


@dataclass(frozen=True)
class ReportData:
    consumption: pd.DataFrame
    abc_xyz: pd.DataFrame
    reorder: pd.DataFrame
    antibiotic: pd.DataFrame
    shares: pd.DataFrame
    medication: pd.DataFrame
    forecast: pd.DataFrame


@dataclass(frozen=True)
class Section:
    title: str
    explanation: str
    body: str  # HTML: a plotly div or a table


def load_data(conn) -> ReportData:
    """Read the marts; a missing forecast mart reads as no forecast (and no reorder list)."""
    frames: dict[str, pd.DataFrame] = {}
    with conn.cursor() as cur:
        for name, query in QUERIES.items():
            if name in FORECAST_MARTS:
                cur.execute("select to_regclass(%s) is not null", (FORECAST_MARTS[name],))
                if not cur.fetchone()[0]:
                    frames[name] = pd.DataFrame(columns=_selected(query))
                    continue
            cur.execute(query)
            columns = [d.name for d in cur.description]
            frames[name] = pd.DataFrame(cur.fetchall(), columns=columns)
    for frame in frames.values():
        for column in frame.columns:
            if column == "month":
                frame[column] = pd.to_datetime(frame[column])
            elif frame[column].dtype == object and column not in TEXT_COLUMNS:
                frame[column] = pd.to_numeric(frame[column])
    return ReportData(**frames)


def _selected(query: str) -> list[str]:
    """The column names a query's select list names (for an empty frame of the same shape)."""
    head = query.split("select", 1)[1].split("from", 1)[0]
    return [part.strip().rsplit(" ", 1)[-1].rsplit(".", 1)[-1] for part in head.split(",")]


# --------------------------------------------------------------------------------------------
# Charts


def _names(data: ReportData) -> dict[str, str]:
    return dict(
        zip(data.medication["medication_key"], data.medication["generic_name"], strict=True)
    )


def _label(key: str, names: dict[str, str]) -> str:
    name = names.get(key)
    return f"{name} ({key})" if name else key


def _layout(fig, height: int = 420):
    fig.update_layout(
        height=height,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        template="plotly_white",
        font={"family": "Noto Sans CJK SC, PingFang SC, Microsoft YaHei, sans-serif"},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _hospital(frame: pd.DataFrame) -> pd.DataFrame:
    """Hospital-level rows: the 'ALL' rows when the mart has them, else every department."""
    has_total = (frame["department_key"] == "ALL").any()
    return frame[frame["department_key"] == "ALL"] if has_total else frame


def spend_trend(data: ReportData):
    import plotly.graph_objects as go

    df = data.consumption[data.consumption["department_key"] != "ALL"].copy()
    df["group"] = df["atc_level1"].fillna("unmapped")
    top = df.groupby("group")["spend"].sum().nlargest(TOP_ATC_GROUPS).index
    df.loc[~df["group"].isin(top), "group"] = "other"
    pivot = df.pivot_table(index="month", columns="group", values="spend", aggfunc="sum")
    fig = go.Figure()
    for group in [*top, "other"]:
        if group in pivot:
            fig.add_trace(go.Scatter(x=pivot.index, y=pivot[group], name=group, stackgroup="s"))
    fig.update_yaxes(title="spend (yuan)")
    return _layout(fig)


def top_drugs(data: ReportData):
    import plotly.graph_objects as go

    names = _names(data)
    df = data.consumption[data.consumption["department_key"] != "ALL"]
    last = df["month"].max()
    recent = df[df["month"] > last - pd.DateOffset(months=12)]
    spend = recent.groupby("medication_key")["spend"].sum().nlargest(TOP_DRUGS).iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=spend.to_numpy(),
            y=[_label(k, names) for k in spend.index],
            orientation="h",
            marker_color="#2b6cb0",
        )
    )
    fig.update_xaxes(title="spend over the last 12 months (yuan)")
    return _layout(fig, height=max(300, 28 * len(spend) + 80))


def abc_xyz_matrix(data: ReportData):
    import plotly.graph_objects as go

    df = data.abc_xyz
    abc, xyz = ["A", "B", "C"], ["X", "Y", "Z"]
    counts = [[int(((df.abc_class == a) & (df.xyz_class == x)).sum()) for x in xyz] for a in abc]
    value = [
        [float(df[(df.abc_class == a) & (df.xyz_class == x)]["annual_value"].sum()) for x in xyz]
        for a in abc
    ]
    text = [[f"{counts[i][j]} drugs<br>¥{value[i][j]:,.0f}" for j in range(3)] for i in range(3)]
    fig = go.Figure(
        go.Heatmap(
            z=value,
            x=[f"{x}" for x in xyz],
            y=[f"{a}" for a in abc],
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            colorbar={"title": "yuan"},
        )
    )
    fig.update_yaxes(autorange="reversed", title="ABC (value)")
    fig.update_xaxes(title="XYZ (demand variability)")
    return _layout(fig, height=380)


def forecast_vs_actual(data: ReportData):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = _names(data)
    df = data.consumption[data.consumption["department_key"] != "ALL"]
    monthly = df.groupby(["medication_key", "month"])["quantity"].sum().reset_index()
    last = monthly["month"].max()
    spend = df[df["month"] > last - pd.DateOffset(months=12)].groupby("medication_key")["spend"]
    keys = list(spend.sum().nlargest(FORECAST_DRUGS).index)
    rows = (len(keys) + 1) // 2 or 1
    fc = data.forecast
    methods = fc.groupby("medication_key")["method"].first().to_dict() if len(fc) else {}
    titles = [
        f"{_label(k, names)} · {methods[k]}" if k in methods else _label(k, names) for k in keys
    ]
    fig = make_subplots(rows=rows, cols=2, subplot_titles=titles, vertical_spacing=0.08)
    for i, key in enumerate(keys):
        r, c = i // 2 + 1, i % 2 + 1
        hist = monthly[monthly["medication_key"] == key].sort_values("month").tail(HISTORY_MONTHS)
        ahead = fc[fc["medication_key"] == key].sort_values("month")
        first = i == 0
        fig.add_trace(
            go.Scatter(
                x=hist["month"], y=hist["quantity"], name="actual", line={"color": "#2b6cb0"},
                legendgroup="a", showlegend=first,
            ),
            row=r, col=c,
        )  # fmt: skip
        if not ahead.empty:
            band_x = [*ahead["month"], *ahead["month"].iloc[::-1]]
            band_y = [*ahead["upper_80"], *ahead["lower_80"].iloc[::-1]]
            fig.add_trace(
                go.Scatter(
                    x=band_x, y=band_y, mode="lines", fill="toself", fillcolor="#dd6b202e",
                    line={"width": 0}, name="80% interval", legendgroup="i", showlegend=first,
                    hoverinfo="skip",
                ),
                row=r, col=c,
            )  # fmt: skip
            fig.add_trace(
                go.Scatter(
                    x=ahead["month"], y=ahead["forecast_quantity"], name="forecast", mode="lines",
                    line={"color": "#dd6b20", "dash": "dash"}, legendgroup="f", showlegend=first,
                ),
                row=r, col=c,
            )  # fmt: skip
    return _layout(fig, height=260 * rows + 80)


def antibiotic_indicators(data: ReportData):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = _hospital(data.antibiotic)
    by_month = df.groupby("month")[
        [
            "inpatient_ddd_j01",
            "patient_days",
            "outpatient_prescriptions",
            "outpatient_with_antibiotic",
        ]
    ].sum()
    density = 100 * by_month["inpatient_ddd_j01"] / by_month["patient_days"].where(lambda s: s > 0)
    share = by_month["outpatient_with_antibiotic"] / by_month["outpatient_prescriptions"].where(
        lambda s: s > 0
    )
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[
            "Antibiotic use density (DDD per 100 patient-days)",
            "Outpatient prescriptions with an antibiotic",
        ],
    )
    fig.add_trace(go.Scatter(x=density.index, y=density, name="density"), row=1, col=1)
    fig.add_hline(
        y=DENSITY_TARGET, line_dash="dot", line_color="#c53030", row=1, col=1,
        annotation_text=f"target ≤ {DENSITY_TARGET:g}",
    )  # fmt: skip
    fig.add_trace(go.Scatter(x=share.index, y=share, name="outpatient share"), row=1, col=2)
    fig.add_hline(
        y=OUTPATIENT_SHARE_TARGET, line_dash="dot", line_color="#c53030", row=1, col=2,
        annotation_text=f"target ≤ {OUTPATIENT_SHARE_TARGET:.0%}",
    )  # fmt: skip
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    return _layout(fig, height=380)


def drug_shares(data: ReportData):
    import plotly.graph_objects as go

    by_month = (
        _hospital(data.shares)
        .groupby("month")[["drug_spend", "essential_drug_spend", "total_revenue"]]
        .sum()
    )
    essential = by_month["essential_drug_spend"] / by_month["drug_spend"].where(lambda s: s > 0)
    cost = by_month["drug_spend"] / by_month["total_revenue"].where(lambda s: s > 0)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=essential.index, y=essential, name="essential-drug share of spend"))
    fig.add_trace(go.Scatter(x=cost.index, y=cost, name="drug cost share of revenue (药占比)"))
    fig.update_yaxes(tickformat=".0%")
    return _layout(fig, height=360)


def last_month_note(data: ReportData) -> str:
    """How the forecast treated a partial last month of data, per treatment (a note line)."""
    fc = data.forecast
    if fc.empty or "last_month_treatment" not in fc:
        return ""
    per_drug = fc.groupby("medication_key")["last_month_treatment"].first()
    counts = per_drug.value_counts()
    parts = []
    for how, count in counts.items():
        drugs = f"{count} drug{'s' if count != 1 else ''}"
        if how == "complete":
            parts.append(f"complete for {drugs}")
        elif how == "excluded":
            parts.append(
                f"excluded for {drugs} (it covered under half its working days: it is forecast "
                "instead)"
            )
        elif str(how).startswith("scaled x"):
            factor = str(how).removeprefix("scaled x")
            parts.append(f"scaled ×{factor} by working days for {drugs}")
        else:
            parts.append(f"{html.escape(str(how))} for {drugs}")
    return "<p class='note'>Last month of data: " + "; ".join(parts) + ".</p>"


def reorder_table(data: ReportData) -> str:
    df = data.reorder
    if df.empty:
        return "<p class='note'>No drug is below its reorder point.</p>"
    head = (
        "<tr><th>drug</th><th>code</th><th>on hand</th><th>on order</th><th>safety stock</th>"
        "<th>reorder point</th><th>suggested order</th><th>expiring in 30 days</th>"
        "<th>forecast method</th><th>backtest WAPE</th></tr>"
    )

    def num(value) -> str:
        return "" if pd.isna(value) else f"{float(value):,.0f}"

    def share(value) -> str:
        return "n/a" if pd.isna(value) else f"{float(value):.0%}"

    body = "".join(
        "<tr>"
        f"<td>{html.escape(str(r.generic_name or ''))}</td>"
        f"<td>{html.escape(str(r.medication_key))}</td>"
        f"<td>{num(r.on_hand)}</td><td>{num(r.on_order)}</td><td>{num(r.safety_stock)}</td>"
        f"<td>{num(r.reorder_point)}</td><td><b>{num(r.suggested_order_qty)}</b></td>"
        f"<td class='{'warn' if (r.expiring_30d_qty or 0) > 0 else ''}'>"
        f"{num(r.expiring_30d_qty)}</td>"
        f"<td>{html.escape(str(r.method))}</td><td>{share(r.backtest_wape)}</td>"
        "</tr>"
        for r in df.itertuples()
    )
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


# --------------------------------------------------------------------------------------------
# Page


CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Segoe UI",
       Helvetica, Arial, sans-serif; margin: 0; color: #1a202c; background: #f7fafc; }
header { background: #1a365d; color: white; padding: 24px 40px; }
header h1 { margin: 0 0 6px 0; font-size: 26px; }
header p { margin: 0; opacity: 0.85; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 40px 60px; }
section { background: white; border-radius: 8px; padding: 18px 24px; margin: 18px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,0.08); }
h2 { font-size: 19px; margin: 0 0 4px 0; color: #1a365d; }
p.explain { margin: 0 0 10px 0; color: #4a5568; }
p.note { color: #4a5568; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid #e2e8f0; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
th { background: #edf2f7; }
td.warn { color: #c05621; font-weight: bold; }
footer { color: #718096; font-size: 13px; text-align: center; margin-top: 30px; }
"""


def build_sections(data: ReportData) -> list[Section]:
    """Every section of the report, charts as plotly divs (plotly.js inlined in the first)."""
    charts = [
        (
            "Monthly drug spend by ATC group",
            "Spend per month for the largest anatomical groups (ATC level 1); the rest is "
            "'other'. Winter rises in R (respiratory) and J (anti-infectives) are seasonal.",
            spend_trend,
        ),
        (
            f"Top {TOP_DRUGS} drugs by spend",
            "The drugs that cost the most over the last twelve months: the first place to "
            "look for price negotiations and volume-based procurement.",
            top_drugs,
        ),
        (
            "ABC/XYZ matrix",
            "Drugs by share of annual value (A: top ~80%, B, C) and by demand variability "
            "(X steady, Y variable, Z erratic); each cell shows the count and the value. "
            "AX drugs suit tight, frequent ordering; CZ drugs suit order-on-demand.",
            abc_xyz_matrix,
        ),
        (
            f"Forecast vs actual: top {FORECAST_DRUGS} drugs by spend",
            "Monthly quantity dispensed (blue) and the demand forecast (orange dashed) with its "
            "80% interval (shaded). Each drug's method (named after its title) is the candidate "
            "with the least error when the drug's own history was forecast from its earlier "
            "months (rolling-origin backtest); months follow their working days and the Spring "
            "Festival.",
            forecast_vs_actual,
        ),
    ]
    later = [
        (
            "Antibiotic indicators vs national targets",
            "Inpatient antibiotic use density (ATC J01 DDDs per 100 patient-days, target ≤ 40) "
            "and the share of outpatient prescriptions with an antibiotic (target ≤ 20%).",
            antibiotic_indicators,
        ),
        (
            "Essential-drug share and drug cost share",
            "Share of drug spend on national essential drugs (higher is the policy aim) and "
            "drug spend as a share of the hospital's revenue (药占比, lower is the aim).",
            drug_shares,
        ),
    ]
    sections: list[Section] = []
    first = True

    notes = {forecast_vs_actual: last_month_note}

    def chart(title: str, explanation: str, make) -> None:
        nonlocal first
        fig = make(data)
        div = fig.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False})
        first = False
        note = notes[make](data) if make in notes else ""
        sections.append(Section(title, explanation, div + note))

    for item in charts:
        chart(*item)
    sections.append(
        Section(
            "Reorder list",
            "Drugs whose stock plus open orders is at or below the reorder point: the "
            "forecast's demand over the lead time plus a safety stock from the forecast's "
            "interval (its 95th percentile above the forecast, scaled to the lead time), with "
            "the suggested order, the units that expire within 30 days, and the method and "
            "backtest error of the drug's forecast.",
            reorder_table(data),
        )
    )
    for item in later:
        chart(*item)
    return sections


def render_html(
    sections: list[Section], *, data_through: date | None, generated_at: datetime
) -> str:
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>Drug procurement report</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>Drug procurement report · 药品采购报告</h1>",
        f"<p>Data through {data_through.strftime('%B %Y') if data_through else 'n/a'} · "
        f"generated {generated_at:%Y-%m-%d %H:%M} UTC · source: warehouse marts "
        "(no patient-level data)</p></header><main>",
    ]
    for s in sections:
        parts.append(
            f"<section><h2>{html.escape(s.title)}</h2>"
            f"<p class='explain'>{html.escape(s.explanation)}</p>{s.body}</section>"
        )
    parts.append(
        "<footer>Hospital data platform · forecast: hdp.analytics.forecast (statsforecast) · "
        "figures aggregate drugs and departments only</footer></main></body></html>"
    )
    return "\n".join(parts)


def render_report(conn, out_dir: Path, *, today: date | None = None) -> Path:
    """Write procurement_<date>.html and procurement_latest.html under out_dir; the dated path."""
    data = load_data(conn)
    generated_at = datetime.now(UTC).replace(tzinfo=None)
    months = data.consumption["month"]
    data_through = months.max().date() if len(months) else None
    page = render_html(build_sections(data), data_through=data_through, generated_at=generated_at)
    out_dir.mkdir(parents=True, exist_ok=True)
    day = today or generated_at.date()
    dated = out_dir / f"procurement_{day:%Y-%m-%d}.html"
    dated.write_text(page, encoding="utf-8")
    (out_dir / "procurement_latest.html").write_text(page, encoding="utf-8")
    return dated
