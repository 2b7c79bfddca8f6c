"""The report's CSV and its self-contained HTML page with inline SVG charts, checked by
structure (always), and opened in headless Chromium when it is installed: its charts laid out
by the browser, and a screenshot kept in var/test-artefacts/reporting/."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orderline_reporting.app.reports import export, sources
from orderline_reporting.domain import render
from orderline_reporting.domain.window import Window
from orderline_runtime.errors import InvalidArgument

from .test_figures import WINDOW, report

NS = {"h": "http://www.w3.org/1999/xhtml", "svg": "http://www.w3.org/2000/svg"}
ARTEFACTS = Path(__file__).resolve().parents[4] / "var" / "test-artefacts" / "reporting"
ZH = Window("day", WINDOW.first_day, WINDOW.last_day, WINDOW.time_zone, "zh-CN")


def html_of(window: Window = WINDOW) -> str:
    return export(report(window), "all", "html").content.decode()


def test_the_html_report_is_well_formed_and_fetches_nothing() -> None:
    page = html_of()
    root = ET.fromstring(page.split("\n", 1)[1])  # after <!DOCTYPE html>
    assert root.tag == "{http://www.w3.org/1999/xhtml}html"
    # Self-contained: no script, no external stylesheet, image, font or link of any kind.
    assert not root.findall(".//h:script", NS) and not root.findall(".//h:link", NS)
    assert not root.findall(".//h:img", NS)
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", page)
    sections = [s.get("id") for s in root.findall(".//h:section", NS)]
    assert sections == ["orders", "stages", "reviews", "devices", "customers"]


def test_every_chart_has_one_bar_per_value_scaled_to_the_largest() -> None:
    root = ET.fromstring(html_of().split("\n", 1)[1])
    charts = {c.get("data-chart"): c for c in root.findall(".//svg:svg", NS)}
    assert set(charts) == {
        "orders_by_state",
        "orders_by_business_type",
        "stage_p90",
        "rejection_reasons",
        "faults_by_category",
        "follow_up_outcomes",
    }
    for chart in charts.values():
        assert chart.get("viewBox") and chart.find("svg:title", NS) is not None
    bars = charts["orders_by_business_type"].findall("svg:rect[@class='bar']", NS)
    assert [b.get("data-value") for b in bars] == ["4", "1"]
    assert float(bars[0].get("width", "0")) == 4 * float(bars[1].get("width", "0"))
    stage_bars = charts["stage_p90"].findall("svg:rect[@class='bar']", NS)
    assert len(stage_bars) == 8
    # The slowest stage (review, p90 5 h) is the one drawn in the alert colour.
    alert = [b for b in stage_bars if b.get("fill") == "#c0392b"]
    assert [b.get("data-value") for b in alert] == ["5"]
    texts = "".join(charts["stage_p90"].itertext())
    assert "Review" in texts and "5.0 h" in texts


def test_labels_are_in_the_language_asked_for() -> None:
    zh = html_of(ZH)
    assert 'lang="zh-CN"' in zh
    for label in (
        "宽带新装",
        "已完成",
        "审核",
        "一次审核通过率",
        "温度",
        "满意",
        "型号未上报",
    ):
        assert label in zh, label
    en = html_of()
    assert "Broadband installation" in en and "宽带新装" not in en


def test_every_figure_has_its_source_event() -> None:
    # Provisioning publishes adjustments, feedback and confirmations, device-monitor the model.
    assert {"adjustment", "feedback", "confirmed"} <= sources()
    page = html_of()
    assert "no source events yet" not in page
    # Faults are counted by the model device-monitor names; a device that named none says so.
    assert "HG8245H5 ONT" in page and "model not reported" in page


def test_the_csv_has_every_table_with_its_title_and_header() -> None:
    text = export(report(), "stages", "csv").content.decode()
    blocks = [list(csv.reader(io.StringIO(b))) for b in text.split("\r\n\r\n")]
    titles = [b[0][0] for b in blocks]
    assert titles == ["Stage lead times and SLA", "Stage lead times and SLA", "SLA breaches"]
    lead = blocks[1]
    assert lead[1] == ["Stage", "Orders measured", "p50", "p90", "p99"]
    assert lead[2] == ["Review", "3", "0 s", "5.0 h", "5.0 h"]
    assert lead[-1][0] == "Creation to completion"
    assert blocks[0][1] == ["Figure", "Value"]
    summary = dict((row[0], row[1]) for row in blocks[0][2:])
    assert summary["Slowest stage (p90)"] == "Review"
    assert summary["Activation success rate"] == "33.3% (1/3)"


def test_exports_refuse_unknown_reports_and_formats() -> None:
    with pytest.raises(InvalidArgument) as caught:
        export(report(), "weather", "pdf")
    assert [v.field for v in caught.value.violations] == ["report", "format"]


def test_an_empty_chart_says_there_is_nothing() -> None:
    svg = render.svg_bar_chart(render.Chart("x", "X", [], []), "zh-CN")
    assert 'class="chart empty"' in svg and "无" in svg


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the report for the browser only: it measures what was laid out.
_PROBE = """<script>
const bars = [...document.querySelectorAll('svg.chart rect.bar')];
const drawn = bars.filter(b => { const r = b.getBoundingClientRect();
  return r.width > 0 && r.height > 0; });
const charts = [...document.querySelectorAll('svg.chart')].filter(s =>
  s.getBoundingClientRect().height > 0);
document.title = 'PROBE bars=' + bars.length + ' drawn=' + drawn.length +
  ' charts=' + charts.length;
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("window", [WINDOW, ZH], ids=["en", "zh-CN"])
def test_headless_chromium_renders_the_charts(window: Window, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    page = html_of(window)
    expected_bars = page.count('class="bar"')
    expected_charts = page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"')
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = re.search(r"PROBE bars=(\d+) drawn=(\d+) charts=(\d+)", dom)
    assert found, dom[:500]
    assert int(found[1]) == expected_bars > 0
    assert int(found[2]) == expected_bars  # every bar has a size on the page
    assert int(found[3]) == expected_charts
    # The screenshot of the report as it is (no probe), kept as the test's artefact.
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    report_file = ARTEFACTS / f"report.{window.language}.html"
    report_file.write_text(page, encoding="utf-8")
    shot = ARTEFACTS / f"report.{window.language}.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            CHROMIUM,
            *flags,
            "--hide-scrollbars",
            "--window-size=1100,4200",
            f"--screenshot={shot}",
            report_file.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
