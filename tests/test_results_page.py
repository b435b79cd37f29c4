"""results/RESULTS.md (fesr.report.results_page): built from a run's files, every number read from
them, and published with exactly the files it links.

The fast tests build a small results directory by hand, with benchmark files whose times are
set, so that the page's stage times and its table at a glance can be checked against numbers
computed here. The slow test reads the page the tiny preset's whole DAG wrote.
"""

import os
import re
import time

import pandas as pd
import pytest

from fesr.evaluate import plan
from fesr.report import results_page as rp
from fesr.report.captions import caption

SCALES = (2, 4)
# mean MSE (x1e-3) per (split, method, scale) of the hand-made Table I
MSE = {
    ("test_random", "bicubic"): (9.0, 90.0),
    ("test_random", "liif"): (0.03, 1.25),
    ("test_random", "nhcsr"): (0.01, 1.5),
    ("test_random", "fe_x1_interp"): (0.2, 95.0),
    ("test_random", "hom_geometric_interp"): (270.0, 92.0),
    ("test_random", "lod_k2"): (0.0005, 0.0005),  # lowest, but a numerical reference
    ("test_deterministic", "bicubic"): (0.001, 0.002),  # lowest, but not learned
    ("test_deterministic", "liif"): (300.0, 640.0),
    ("test_deterministic", "nhcsr"): (40.0, 700.0),
    ("test_deterministic", "fe_x1_interp"): (7.0, 16.0),
    ("test_deterministic", "hom_geometric_interp"): (5.7, 6.6),
    ("test_deterministic", "fe_it1"): (0.001, 0.001),  # lowest, but CG stopped early
}
# benchmark files: rule directory / job -> (seconds, seconds before the newest job's end)
JOBS = {
    "data_solve_shard/train/u_x2_0.tsv": (100.0, 900.0),
    "data_merge/train/u_x2.tsv": (5.0, 795.0),
    "train/liif.tsv": (300.0, 400.0),
    "train/nhcsr.tsv": (350.0, 380.0),
    "predict/liif/test_random.tsv": (40.0, 100.0),
    "report/table1.tsv": (3.0, 0.0),
}


def write_benchmarks(results, now):
    for job, (seconds, before_end) in JOBS.items():
        path = results / "benchmarks" / job
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\tcpu_time\tmax_rss\n{seconds}\t{seconds / 2}\t{seconds}\n")
        os.utime(path, (now - before_end, now - before_end))


@pytest.fixture
def results(tmp_path):
    res = tmp_path / "results"
    tables, figures = res / "tables", res / "figures"
    tables.mkdir(parents=True)
    figures.mkdir()
    for name in rp.table_names():
        (tables / f"{name}.md").write_text(f"Caption of {name}.\n\n| a |\n|---|\n| {name} 1.5 |\n")
        (tables / f"{name}.csv").write_text("a\n1.5\n")
    rows = [
        {"split": split, "method": method}
        | {f"mse_e3_x{s}": v for s, v in zip(SCALES, vals, strict=True)}
        for (split, method), vals in MSE.items()
    ]
    pd.DataFrame(rows).to_csv(tables / "table1.csv", index=False)
    pd.DataFrame({"method": ["bicubic", "liif", "nhcsr"], "params": [0, 41000, 52000]}).to_csv(
        tables / "table_complexity.csv", index=False
    )
    (tables / "table_cost_answer.md").write_text("# When is it worth it?\n\nAnswer text.\n")
    for name in plan.FIGURE_NAMES:
        (figures / f"{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (figures / "fig_training.md").write_text("Training summary.\n\n| model |\n|---|\n| liif |\n")
    write_benchmarks(res, time.time())
    return res


def test_stage_times_are_the_benchmark_sums_and_spans(results, tiny_config):
    text = rp.page(results, rp.run_summary(tiny_config), ["workflow/presets/tiny.yaml"])
    stage_of = {"data_": "data", "train": "training", "predict": "evaluation", "report": "report"}
    expected = {}
    for job, (seconds, before_end) in JOBS.items():
        stage = next(v for k, v in stage_of.items() if job.startswith(k))
        jobs, total, first, last = expected.get(stage, (0, 0.0, -1e9, 1e9))
        # start and end counted backwards from the newest job's end
        expected[stage] = (
            jobs + 1,
            total + seconds,
            max(first, before_end + seconds),
            min(last, before_end),
        )
    section = text.split("## Time per stage", 1)[1].split("\n## ", 1)[0]
    for stage, (jobs, total, first, last) in expected.items():
        row = next(line for line in section.splitlines() if line.startswith(f"| {stage} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == str(jobs), row
        assert cells[2] == f"{total:.0f}", row
        assert cells[3] == f"{total / 2:.0f}", row  # the cpu_time column
        assert cells[4] == rp.duration(first - last), row
    assert rp.duration(3725) == "1 h 2 min 5 s"


def test_glance_table_takes_the_lowest_learned_method(results, tiny_config):
    text = rp.page(results, rp.run_summary(tiny_config), [])
    for split in ("test_random", "test_deterministic"):
        block = text.split(f"**{split}**", 1)[1].split("\n\n", 2)[1]
        for i, s in enumerate(SCALES):
            learned = {m: MSE[(split, m)][i] for m in ("liif", "nhcsr")}
            best = min(learned, key=learned.get)
            others = ("nhcsr", "fe_x1_interp", "hom_geometric_interp")
            want = [f"{best} {learned[best]:.3g}", *(f"{MSE[(split, m)][i]:.3g}" for m in others)]
            assert f"| {s}x | " + " | ".join(want) + " |" in block, block
    assert "41,000-52,000 parameters" in text


def test_page_holds_every_table_and_figure_with_its_caption(results, tiny_config):
    text = rp.page(results, rp.run_summary(tiny_config), ["a/quick.yaml", "b/study.yaml"])
    assert text.startswith(rp.MARKER.format(preset="study"))
    assert "# Results of the study preset" in text
    for name in rp.table_names():
        assert f"| {name} 1.5 |" in text
        assert f"](tables/{name}.csv)" in text
    assert "#### When is it worth it?" in text  # the answer's heading nests under the page's
    for name in plan.FIGURE_NAMES:
        assert f"![{name}](figures/{name}.png)" in text
        assert caption(name) in text
    assert "| liif |" in text  # fig_training.md
    # sizes of the run
    tr = tiny_config["training"]
    assert f"{tr['iterations']} iterations of batch {tr['batch_size']}" in text
    assert f"train {tiny_config['splits']['train']['samples']} random maps" in text


def test_missing_table_is_named(results, tiny_config):
    (results / "tables" / "table3_paired.md").unlink()
    with pytest.raises(FileNotFoundError, match="table3_paired.md"):
        rp.page(results, rp.run_summary(tiny_config), [])


def test_publish_copies_the_page_and_its_links_only(results, tiny_config, tmp_path):
    rp.write(results, rp.run_summary(tiny_config), ["x/quick.yaml"], results / rp.PAGE)
    (results / "tables" / "unlinked.md").write_text("not on the page")
    dest = tmp_path / "docs" / "quick"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "stale.png").write_bytes(b"old")
    written = rp.publish(results, dest, expect_preset="quick")
    copied = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    linked = set(re.findall(r"\]\(((?:tables|figures)/[^)]+)\)", (results / rp.PAGE).read_text()))
    assert copied == linked | {rp.PAGE}
    assert len(written) == len(copied)
    assert (dest / rp.PAGE).read_text() == (results / rp.PAGE).read_text()
    assert not (dest / "tables" / "unlinked.md").exists()


def test_publish_refuses_another_preset_and_foreign_files(results, tiny_config, tmp_path):
    rp.write(results, rp.run_summary(tiny_config), ["x/study.yaml"], results / rp.PAGE)
    with pytest.raises(ValueError, match="study preset's page, expected the quick"):
        rp.publish(results, tmp_path / "quick", expect_preset="quick")
    dest = tmp_path / "notes"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        rp.publish(results, dest)
    assert (dest / "notes.txt").read_text() == "mine"


def test_cli_reports_a_missing_page(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        rp.main(["publish", "--results", str(tmp_path), "--dest", str(tmp_path / "d")])
    assert err.value.code == 2
    assert "RESULTS.md' does not exist" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_tiny_run_page_quotes_its_tables(tiny_run, tiny_config):
    results = tiny_run / "results"
    text = (results / rp.PAGE).read_text()
    assert rp.page_preset(text) == "tiny"
    for name in rp.table_names():
        body = (results / "tables" / f"{name}.md").read_text().strip()
        assert rp.demote(body, 3) in text, f"{name}.md is not on the page as written"
    t1 = pd.read_csv(results / "tables" / "table1.csv")
    random = t1[t1["split"] == "test_random"].set_index("method")
    for s in plan.eval_scales(tiny_config):
        assert f"{random.loc['nhcsr', f'mse_e3_x{s}']:.3g}" in text
    # Jobs that finished after the page (its own, and any a later test runs in this shared
    # directory) wrote their benchmark files after it, so they are not on it.
    written = (results / rp.PAGE).stat().st_mtime
    benchmarks = [
        b for b in (results / "benchmarks").rglob("*.tsv") if b.stat().st_mtime <= written
    ]
    total_jobs = len(benchmarks)
    assert f"All stages: {total_jobs} jobs" in text
    for target in rp.linked_files(text):
        assert (results / target).is_file(), target
