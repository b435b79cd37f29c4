"""Snakemake's HTML report: every caption renders without a docutils message, the tiny run's
report builds without one and holds every table and figure, and headless Chromium shows its start
page and one table's page as pages (rendered DOM checked, screenshots not blank).

Snakemake renders each caption as a Jinja2 template and then with docutils' ``publish_parts``
(snakemake/report/__init__.py); docutils prints its messages to stderr as ``<string>:1:
(ERROR/3) ...`` and embeds them in the HTML as ``system-message`` blocks. Both are looked for.

The report is one page driven by JavaScript, with no address per view, so the table's view is a
copy of the report with a script that opens it as a reader's clicks would (Results, Tables, the
table's info button): its path and caption. Snakemake shows a CSV table as a file to download,
not inline. The screenshots (start.png, table1.png) stay in the tiny run's
``results/report_screens/``; the test prints where.
"""

import html
import io
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import numpy as np
import pytest
from docutils.core import publish_parts
from tiny_dag import snakemake

from fesr.report.captions import CAPTION_DIR, caption, caption_names

DOCUTILS_MESSAGE = re.compile(r"\((DEBUG|INFO|WARNING|ERROR|SEVERE)/[0-4]\)")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,900",
    "--virtual-time-budget=20000",
]
# once the report's React app has started, open Table I's page as a reader's clicks would
SHOW_TABLE1 = """
<script>
const fesrShowTable = setInterval(() => {
  if (typeof app !== "undefined" && app) {
    clearInterval(fesrShowTable);
    app.showCategory("Tables");
    app.showResultInfo("results/tables/table1.csv");
  }
}, 50);
</script>
"""


def docutils_messages(rst: str) -> str:
    """What docutils reports (warnings and worse, Snakemake's level) while rendering ``rst``."""
    stream = io.StringIO()
    publish_parts(
        rst,
        writer="html",
        settings_overrides={"warning_stream": stream, "report_level": 2},
    )
    return stream.getvalue()


@pytest.mark.parametrize("name", caption_names())
def test_caption_renders_without_docutils_messages(name):
    rst = jinja2.Environment().from_string((CAPTION_DIR / f"{name}.rst").read_text()).render()
    assert docutils_messages(rst) == ""


def test_docutils_check_can_fail():
    assert "Undefined substitution" in docutils_messages("the |difference| of two means")


@pytest.fixture(scope="module")
def report(tiny_run):
    res = snakemake(tiny_run, "--report", "results/report.html")
    assert res.returncode == 0, res.stderr[-3000:]
    return res, tiny_run / "results" / "report.html"


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_report_builds_without_docutils_messages(report):
    res, page = report
    messages = [m for m in (res.stdout + res.stderr).splitlines() if DOCUTILS_MESSAGE.search(m)]
    assert not messages, "docutils reported:\n" + "\n".join(messages)
    assert "system-message" not in page.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_report_gathers_every_table_and_figure(report):
    text = report[1].read_text(errors="replace")
    for name in ("table1.csv", "table_cost.csv", "fig1.png", "fig_cost.png", "fig_training.png"):
        assert name in text


def chromium(*args, timeout=90) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: `make setup` installs it (workflow/scripts/install_system.sh)"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def rendered(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after its scripts ran."""
    res = chromium(f"--user-data-dir={profile}", "--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def screenshot(page: Path, png: Path, profile: Path) -> np.ndarray:
    res = chromium(f"--user-data-dir={profile}", f"--screenshot={png}", page.as_uri())
    assert res.returncode == 0 and png.is_file(), res.stderr[-2000:]
    import matplotlib.image

    return matplotlib.image.imread(png)


def visible_text(dom: str) -> str:
    dom = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", dom)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_chromium_shows_the_start_page_and_a_table(report, tmp_path):
    page = report[1]
    screens = page.parent / "report_screens"
    screens.mkdir(exist_ok=True)
    # the script goes before the page's own closing tag, the last one (scripts contain others)
    head, tag, tail = page.read_text().rpartition("</body>")
    table_page = screens / "table1.html"
    table_page.write_text(head + SHOW_TABLE1 + tag + tail)

    start = visible_text(rendered(page, tmp_path / "profile-start"))
    for word in ("Workflow", "Statistics", "Figures", "Tables"):
        assert word in start, f"start page lacks '{word}': {start[:1500]}"

    table = visible_text(rendered(table_page, tmp_path / "profile-table"))
    assert "results/tables/table1.csv" in table, table[:1500]
    assert " ".join(caption("table1").split())[:200] in table, table[:3000]

    shots = {}
    for name, view in (("start", page), ("table1", table_page)):
        img = screenshot(view, screens / f"{name}.png", tmp_path / f"profile-shot-{name}")
        assert img.shape[:2] == (900, 1400)
        grey = img[..., :3].mean(axis=2)
        # a page, not a blank or single-colour screen: ink on at least 1% of the pixels
        assert (np.abs(grey - np.median(grey)) > 0.2).mean() > 0.01, name
        shots[name] = grey
    assert np.abs(shots["start"] - shots["table1"]).mean() > 0.005, "the two views look alike"
    print(f"screenshots: {screens}/start.png, {screens}/table1.png")
