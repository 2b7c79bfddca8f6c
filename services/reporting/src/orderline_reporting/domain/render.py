"""The report as a manager reads it: tables (for CSV and the CLI), and one self-contained HTML
page with its charts drawn as inline SVG (no script, no font, no image or style fetched: it
reads the same offline, in a mail attachment or in the archive).

Everything is rendered from the figures (domain/figures.py) and the labels in one language
(domain/labels.py). The HTML is well-formed XML (XHTML syntax in an HTML5 document), so a test
parses it with the standard library.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from html import escape

from orderline_reporting.domain import facts as F
from orderline_reporting.domain import labels as L
from orderline_reporting.domain.figures import (
    CustomerFigures,
    DeviceFigures,
    OrderFigures,
    Rate,
    Report,
    ReviewFigures,
    StageFigures,
)
from orderline_reporting.domain.window import Window

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    columns: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart: one bar per label; `highlight` marks bars drawn in the alert
    colour (the slowest stage)."""

    key: str
    title: str
    labels: list[str]
    values: list[float]
    unit: str = ""
    highlight: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    summary: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


# --- formatting -----------------------------------------------------------------------------


def duration(seconds: float | None, lang: str) -> str:
    """A time a manager reads: 45 s, 12 min, 3.5 h, 2.1 d; "—" when none was measured."""
    if seconds is None:
        return "—"
    zh = lang == "zh-CN"
    if seconds < 60:
        return f"{seconds:.0f} 秒" if zh else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} 分钟" if zh else f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} 小时" if zh else f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} 天" if zh else f"{seconds / 86400:.1f} d"


def percent(rate: Rate) -> str:
    value = rate.value
    if value is None:
        return "—"
    return f"{value * 100:.1f}% ({rate.numerator}/{rate.denominator})"


def _texts(lang: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        return L.text(key, lang)

    return t


def _no_source(lang: str) -> str:
    return f"— ({L.text('no_source', lang)})"


# --- sections -------------------------------------------------------------------------------


def orders_section(figures: OrderFigures, window: Window) -> Section:
    lang = window.language
    t = _texts(lang)
    return Section(
        "orders",
        t("orders"),
        summary=[(t("total_orders"), str(figures.total))],
        tables=[
            Table(
                "orders_by_period",
                t("orders"),
                [t("period"), t("business_type"), t("state"), t("count")],
                [
                    [d.isoformat(), L.business_type_label(b, lang), L.state_label(s, lang), n]
                    for d, b, s, n in figures.rows
                ],
            )
        ],
        charts=[
            Chart(
                "orders_by_state",
                t("state"),
                [L.state_label(s, lang) for s, n in figures.by_state if n],
                [float(n) for s, n in figures.by_state if n],
            ),
            Chart(
                "orders_by_business_type",
                t("business_type"),
                [L.business_type_label(b, lang) for b, _ in figures.by_business_type],
                [float(n) for _, n in figures.by_business_type],
            ),
        ],
    )


def stages_section(figures: StageFigures, window: Window, sources: Collection[str]) -> Section:
    lang = window.language
    t = _texts(lang)
    rows: list[list[Cell]] = [
        [
            L.stage_label(s.stage, lang),
            s.samples,
            duration(s.p50, lang),
            duration(s.p90, lang),
            duration(s.p99, lang),
        ]
        for s in [*figures.stages, figures.end_to_end]
    ]
    measured = [s for s in figures.stages if s.p90 is not None]
    adjustment = percent(figures.adjustment) if F.ADJUSTMENT in sources else _no_source(lang)
    return Section(
        "stages",
        t("stages"),
        summary=[
            (
                t("slowest_stage"),
                L.stage_label(figures.slowest_stage, lang) if figures.slowest_stage else "—",
            ),
            (t("orders_in_jeopardy"), str(figures.orders_in_jeopardy)),
            (t("sla_breaches"), str(figures.sla_breaches)),
            (t("jobs_started"), str(figures.provisioning_started)),
            (t("activation_rate"), percent(figures.activation)),
            (t("fallout_rate"), percent(figures.fallout)),
            (t("held_rate"), percent(figures.held)),
            (t("adjustment_rate"), adjustment),
        ],
        tables=[
            Table(
                "stage_lead_times",
                t("stages"),
                [t("stage"), t("samples"), t("p50"), t("p90"), t("p99")],
                rows,
            ),
            Table(
                "sla",
                t("sla_breaches"),
                [t("milestone"), t("met"), t("late"), t("overdue")],
                [
                    [L.milestone_label(m.milestone, lang), m.met, m.late, m.overdue]
                    for m in figures.sla
                ],
            ),
        ],
        charts=[
            Chart(
                "stage_p90",
                f"{t('stages')} (p90)",
                [L.stage_label(s.stage, lang) for s in measured],
                [(s.p90 or 0.0) / 3600 for s in measured],
                unit="h",
                highlight=frozenset(
                    i for i, s in enumerate(measured) if s.stage == figures.slowest_stage
                ),
            )
        ],
    )


def _reasons(key: str, title: str, reasons: list[tuple[str, int]], lang: str) -> Table:
    return Table(
        key,
        title,
        [L.text("reason", lang), L.text("count", lang)],
        [[L.reason_label(code, lang), n] for code, n in reasons],
    )


def reviews_section(figures: ReviewFigures, window: Window) -> Section:
    lang = window.language
    t = _texts(lang)
    top = figures.rejection_reasons[:10]
    return Section(
        "reviews",
        t("reviews"),
        summary=[
            (t("decided"), str(figures.decided)),
            (t("first_pass_rate"), percent(figures.first_pass)),
            (t("approved"), str(figures.approved)),
            (t("auto_approved"), str(figures.auto_approved)),
            (t("rejected"), str(figures.rejected)),
            (t("queued"), str(figures.queued)),
            (t("info_requested"), str(figures.info_requested)),
        ],
        tables=[
            _reasons("rejection_reasons", t("rejection_reasons"), figures.rejection_reasons, lang),
            _reasons(
                "information_reasons", t("information_reasons"), figures.information_reasons, lang
            ),
            _reasons("queue_reasons", t("queue_reasons"), figures.queue_reasons, lang),
        ],
        charts=[
            Chart(
                "rejection_reasons",
                t("rejection_reasons"),
                [L.reason_label(c, lang) for c, _ in top],
                [float(n) for _, n in top],
            )
        ],
    )


def devices_section(figures: DeviceFigures, window: Window) -> Section:
    lang = window.language
    t = _texts(lang)

    def model(name: str) -> str:
        # A device whose telemetry never named its model.
        return t("unknown_model") if name == L.UNKNOWN_MODEL else name

    return Section(
        "devices",
        t("devices"),
        summary=[
            (t("faults"), str(figures.faults)),
            (t("repaired"), str(figures.repaired)),
            (t("mttr"), duration(figures.mean_time_to_repair, lang)),
            (t("devices_affected"), str(figures.devices_affected)),
        ],
        tables=[
            Table(
                "faults_by_model_and_category",
                t("devices"),
                [t("model"), t("category"), t("faults"), t("repaired"), t("mttr")],
                [
                    [
                        model(r.model),
                        L.category_label(r.category, lang),
                        r.faults,
                        r.repaired,
                        duration(r.mean_time_to_repair, lang),
                    ]
                    for r in figures.by_model_and_category
                ],
            )
        ],
        charts=[
            Chart(
                "faults_by_category",
                t("category"),
                [L.category_label(r.category, lang) for r in figures.by_category],
                [float(r.faults) for r in figures.by_category],
            )
        ],
    )


def customers_section(
    figures: CustomerFigures, window: Window, sources: Collection[str]
) -> Section:
    lang = window.language
    t = _texts(lang)

    def sourced(kind: str, value: str) -> str:
        return value if kind in sources else _no_source(lang)

    return Section(
        "customers",
        t("customers"),
        summary=[
            (t("follow_ups"), str(figures.follow_ups)),
            (t("satisfaction_rate"), percent(figures.satisfaction)),
            (t("reach_rate"), percent(figures.reached)),
            (t("cases_opened"), str(figures.cases_opened)),
            (t("device_cases"), str(figures.device_cases)),
            (t("cases_closed"), str(figures.cases_closed)),
            (t("mean_time_to_close"), duration(figures.mean_time_to_close, lang)),
            (t("feedback"), sourced(F.FEEDBACK, str(figures.feedback))),
            (
                t("mean_score"),
                sourced(
                    F.FEEDBACK,
                    "—" if figures.mean_score is None else f"{figures.mean_score:.2f}",
                ),
            ),
            (t("confirmed"), sourced(F.CONFIRMED, str(figures.confirmations))),
        ],
        tables=[
            Table(
                "follow_up_outcomes",
                t("follow_ups"),
                [t("outcome"), t("count")],
                [[L.outcome_label(o, lang), n] for o, n in figures.by_outcome],
            )
        ],
        charts=[
            Chart(
                "follow_up_outcomes",
                t("outcome"),
                [L.outcome_label(o, lang) for o, _ in figures.by_outcome],
                [float(n) for _, n in figures.by_outcome],
            )
        ],
    )


SECTIONS = ("orders", "stages", "reviews", "devices", "customers")


def sections(report: Report, which: str, sources: Collection[str]) -> list[Section]:
    """The sections of one report (`orders` … `customers`) or of all of them (`all`)."""
    w = report.window
    build: dict[str, Callable[[], Section]] = {
        "orders": lambda: orders_section(report.orders, w),
        "stages": lambda: stages_section(report.stages, w, sources),
        "reviews": lambda: reviews_section(report.reviews, w),
        "devices": lambda: devices_section(report.devices, w),
        "customers": lambda: customers_section(report.customers, w, sources),
    }
    keys = SECTIONS if which == "all" else (which,)
    return [build[k]() for k in keys]


# --- CSV ------------------------------------------------------------------------------------


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(parts: Sequence[Section], lang: str) -> str:
    """Every table of the sections; a section's figures first as a two-column table. Tables
    are separated by an empty line, each a line with its title, a header line, then its rows
    (the CLI prints them as tables)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    first = True
    for section in parts:
        tables = list(section.tables)
        if section.summary:
            tables.insert(
                0,
                Table(
                    f"{section.key}_summary",
                    section.title,
                    [L.text("figure", lang), L.text("value", lang)],
                    [[k, v] for k, v in section.summary],
                ),
            )
        for table in tables:
            if not first:
                writer.writerow([])
            first = False
            writer.writerow([table.title])
            writer.writerow(table.columns)
            writer.writerows([[_cell(c) for c in row] for row in table.rows])
    return out.getvalue()


# --- HTML and SVG ---------------------------------------------------------------------------

_BAR = "#2f6db5"
_ALERT = "#c0392b"
_CHART_WIDTH = 640
_LABEL_WIDTH = 200
_ROW = 26


def _number(value: float, unit: str) -> str:
    text = f"{value:.1f}" if unit or value != int(value) else f"{int(value)}"
    return f"{text} {unit}".strip()


def svg_bar_chart(chart: Chart, lang: str) -> str:
    """A horizontal bar chart as inline SVG: one `rect.bar` per value, its label and value as
    text. An empty chart says so instead of drawing nothing."""
    title = escape(chart.title)
    if not chart.values:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart empty" '
            f'data-chart="{escape(chart.key)}" viewBox="0 0 {_CHART_WIDTH} 40" '
            f'width="{_CHART_WIDTH}" height="40" role="img"><title>{title}</title>'
            f'<text x="0" y="24" class="muted">{escape(L.text("none", lang))}</text></svg>'
        )
    top = max(chart.values) or 1.0
    plot = _CHART_WIDTH - _LABEL_WIDTH - 80
    height = _ROW * len(chart.values) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{escape(chart.key)}" '
        f'viewBox="0 0 {_CHART_WIDTH} {height}" width="{_CHART_WIDTH}" height="{height}" '
        f'role="img"><title>{title}</title>'
    ]
    for i, (label, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        y = 5 + i * _ROW
        width = max(1.0, value / top * plot) if value > 0 else 0.0
        colour = _ALERT if i in chart.highlight else _BAR
        parts.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar" x="{_LABEL_WIDTH}" y="{y + 3}" width="{width:.1f}" '
            f'height="{_ROW - 8}" fill="{colour}" data-value="{value:.6g}"/>'
            f'<text x="{_LABEL_WIDTH + width + 6:.1f}" y="{y + 17}">'
            f"{escape(_number(value, chart.unit))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(c))}</td>" for c in row) + "</tr>"
        for row in table.rows
    )
    if not table.rows:
        body = f'<tr><td colspan="{len(table.columns)}" class="muted">—</td></tr>'
    return (
        f'<table data-table="{escape(table.key)}"><caption>{escape(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


_STYLE = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC",
  "Microsoft YaHei", system-ui, sans-serif; margin: 2em auto; max-width: 60em;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #2f6db5; padding-bottom: 0.2em; margin-top: 2em; }
.meta { color: #555; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.5em; }
dl.summary dt { color: #555; }
dl.summary dd { margin: 0; font-weight: 600; }
table { border-collapse: collapse; margin: 1em 0; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
svg.chart { display: block; margin: 0.8em 0; font-size: 13px; }
svg text { fill: #222; font-family: inherit; }
.muted, svg text.muted { color: #888; fill: #888; }
figure { margin: 0; }
figcaption { font-weight: 600; }
"""


def to_html(report: Report, parts: Sequence[Section]) -> str:
    w = report.window
    lang = w.language
    t = _texts(lang)
    body: list[str] = []
    for section in parts:
        body.append(f'<section id="{escape(section.key)}"><h2>{escape(section.title)}</h2>')
        if section.summary:
            body.append(
                '<dl class="summary">'
                + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in section.summary)
                + "</dl>"
            )
        for chart in section.charts:
            body.append(
                f"<figure><figcaption>{escape(chart.title)}</figcaption>"
                f"{svg_bar_chart(chart, lang)}</figure>"
            )
        body.extend(_html_table(table) for table in section.tables)
        body.append("</section>")
    generated = report.generated_at.astimezone(w.tz).strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n"
        f'<html xmlns="http://www.w3.org/1999/xhtml" lang="{escape(lang)}"><head>'
        '<meta charset="utf-8"/><meta name="viewport" content="width=device-width"/>'
        f"<title>{escape(t('report_title'))} {escape(w.label())}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{escape(t('report_title'))}</h1>"
        f'<p class="meta">{escape(t("window"))}: {escape(w.label())} · '
        f"{escape(t('time_zone'))}: {escape(w.time_zone)} · "
        f"{escape(t('generated'))}: {escape(generated)}</p>"
        f'<p class="meta">{escape(t("cohort_note"))}</p>' + "".join(body) + "</body></html>\n"
    )
