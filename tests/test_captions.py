"""One source for every caption: the HTML report's ``workflow/report/{name}.rst`` files are what
the Markdown and LaTeX tables print (``fesr.report.captions``), and every table and figure rule
has one. Whether each file renders without a docutils message: tests/test_report_html.py."""

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fesr.report.captions import CAPTION_DIR, caption, caption_names
from fesr.report.tables import main as tables_main

RULES = CAPTION_DIR.parent / "rules"


def test_every_table_and_figure_rule_has_a_caption_file():
    text = "".join(p.read_text() for p in RULES.glob("report_*.smk"))
    names = re.findall(r'(?:table|figure)_outputs\("(\w+)"\)', text)
    assert {"table1", "table_cost", "fig1", "fig_training"} <= set(names)
    assert set(names) <= set(caption_names())


def test_unknown_caption_names_the_name_and_the_known_ones():
    with pytest.raises(ValueError, match=r"no caption for 'table9'.*'table1'"):
        caption("table9")


def _rows(key, names, scale=4, **columns):
    return [
        {key: n, "split": "test_random", "scale": scale, "sample": k, **columns}
        for n in names
        for k in range(3)
    ]


def _first_paragraph(path):
    return path.read_text().split("\n\n", 1)[0]


def test_markdown_and_latex_tables_print_the_report_caption(tmp_path):
    metrics = pd.DataFrame(
        _rows("method", ["liif", "nhcsr"], mse=2e-3, mae=1e-2, ssim=0.9, rel_l2=0.1,
              rel_energy=0.2, rel_h1=0.2, seconds=0.5)
    )  # fmt: skip
    metrics["mse"] += np.arange(len(metrics)) * 1e-4  # some spread over maps
    fe = pd.DataFrame(
        _rows("approach", ["fe_direct", "fe_x1_interp"], mse=0.0, ssim=1.0, rel_l2=0.0,
              rel_energy=0.0, rel_h1=0.0, seconds=2.0, setup_seconds=1.0,
              solve_seconds=1.0, cores=1)
    )  # fmt: skip
    mpath, fpath = tmp_path / "metrics.csv", tmp_path / "fe.csv"
    metrics.to_csv(mpath, index=False)
    fe.to_csv(fpath, index=False)
    xr.Dataset({"solve_time": ("sample", [0.1, 0.1, 0.1])}).to_netcdf(tmp_path / "u_x1.nc")
    common = ["--metrics", str(mpath), "--methods", "liif", "nhcsr", "--scales", "4"]
    tables_main(["table1", *common, "--train-scales", "2", "--baselines", str(fpath)]
                + ["--out-prefix", str(tmp_path / "table1")])  # fmt: skip
    tables_main(["table2", *common, "--out-prefix", str(tmp_path / "table2")])
    tables_main(["table_cost", *common, "--baselines", str(fpath)]
                + ["--lr-data", f"test_random={tmp_path / 'u_x1.nc'}"]
                + ["--out-prefix", str(tmp_path / "table_cost")])  # fmt: skip
    for name in ("table1", "table2", "table_cost"):
        md = _first_paragraph(tmp_path / f"{name}.md")
        assert md.startswith(caption(name)), name
        assert caption(name) in (tmp_path / f"{name}.tex").read_text(), name
    # the data's own facts follow the shared text
    t1 = _first_paragraph(tmp_path / "table1.md")[len(caption("table1")) :]
    assert "Trained at scales [2], so scales [4] are out of distribution" in t1
    assert "maps per scale 4x: 3" in t1 and "fe_x1_interp (arithmetic mean)" in t1
    assert _first_paragraph(tmp_path / "table_cost.md") == caption("table_cost")
    # both fronts are described
    assert "pareto (relative L2)" in caption("table_cost")
    assert "pareto_energy (relative energy norm" in caption("table_cost")
