"""The timing job of table_cost (``python -m fesr.evaluate.timing``) and table_cost on its times.

The CLI runs the real solvers (DOLFINx, PG-LOD, the partial solver) and real tiny checkpoints
(random weights) on a synthetic split (tests/synthetic_data.py): it must write one row per
approach the pipeline's own parts name (fesr.evaluate.computed_plan), each on one core with
set-up + solve = seconds. table_cost with a timing file takes its times and keeps the pipeline's
as pipeline_seconds; the dry run of ``snakemake table_cost`` plans one timing job.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_data import write_split
from test_seed_replicas import ROOT, dry_run

from fesr.checkpoint import save_checkpoint
from fesr.config import load_config
from fesr.evaluate import computed_plan, plan
from fesr.models.registry import build_model, resolve_model_config
from fesr.report.cost_table import cost_table

pytest.importorskip("fesr.fem.compat")  # DOLFINx, loaded after netCDF4 (see compat)

SPLIT, SCALES, MODELS = "test_random", (2, 4), ("bicubic", "liif")


@pytest.fixture(scope="module")
def timing_csv(tmp_path_factory, tiny_config):
    from fesr.evaluate.timing import main

    root = tmp_path_factory.mktemp("timing")
    write_split(root / "data", SPLIT, 3, (1, 2, 4), n=32, E=64)
    torch.manual_seed(0)
    ckpts = []
    for name in MODELS:
        ckpts.append(
            save_checkpoint(
                root / "models" / name / "checkpoint.pt",
                model_name=name,
                model_cfg=resolve_model_config(name, tiny_config),
                state_dict=build_model(name, tiny_config).state_dict(),
                iteration=0,
                u_scale=1.5,
                contrast=[1.0, 100.0],
            )
        )
    cfg = tiny_config["baselines"]
    out = root / "timing" / f"{SPLIT}.csv"
    main(
        ["--split", SPLIT, "--maps", "2", "--scales", *map(str, SCALES)]
        + ["--coarse-scales", "1", "2", "--models", *MODELS, "--checkpoints", *map(str, ckpts)]
        + ["--data-dir", str(root / "data"), "--lr-n", "32", "--chunk", "2048"]
        + ["--lod-layers", *map(str, cfg["lod"]["layers"])]
        + ["--fe-iterations", *map(str, cfg["fe_iterations"])]
        + ["--corrections-models", *cfg["corrections"]["models"]]
        + ["--corrections-scales", *map(str, cfg["corrections"]["scales"])]
        + ["--cg", *map(str, cfg["corrections"]["cg"])]
        + ["--smooth", *map(str, cfg["corrections"]["smooth"])]
        + ["--out", str(out)]
    )
    return pd.read_csv(out)


def expected_approaches(config, alpha) -> set[str]:
    """The approach names of the fe_baselines part and the metric parts at (SPLIT, alpha)."""
    config = copy.deepcopy(config)
    config["baselines"]["lod"].setdefault("finer", [])  # the schema's default
    names = {"fe_direct", *MODELS, "hom_geometric_interp", "hom_harmonic_interp"}
    names |= {f"fe_x{a}_interp" for a in (1, 2) if a < alpha}
    return names | set(computed_plan.computed_rows(config, SPLIT, alpha))


def test_timing_writes_every_approach_on_one_core(timing_csv, tiny_config):
    t = timing_csv
    for alpha in SCALES:
        got = set(t.loc[t["scale"] == alpha, "approach"])
        assert got == expected_approaches(tiny_config, alpha), alpha
    assert (t["cores"] == 1).all() and (t["maps"] == 2).all() and set(t["split"]) == {SPLIT}
    np.testing.assert_allclose(t["setup_seconds"] + t["solve_seconds"], t["seconds"], rtol=1e-12)
    assert (t["solve_seconds"] > 0).all() and (t["setup_seconds"] >= 0).all()
    rows = t.set_index(["approach", "scale"])
    assert (rows.loc[list(MODELS), "setup_seconds"] == 0).all()
    assert (rows.loc["fe_direct", "setup_seconds"] > 0).all()
    # a corrected SR field: its model's SR time plus the CG set-up and iteration of fe_x4_it1
    fix, sr, cg = rows.loc[("liif+cg1", 4)], rows.loc[("liif", 4)], rows.loc[("fe_x4_it1", 4)]
    assert fix["setup_seconds"] == cg["setup_seconds"]
    assert sr["solve_seconds"] < fix["solve_seconds"] < sr["solve_seconds"] + cg["seconds"]
    # the same LR solve under both targets; only the interpolation differs
    lr2, lr4 = rows.loc[("fe_x1_interp", 2)], rows.loc[("fe_x1_interp", 4)]
    assert lr2["setup_seconds"] == lr4["setup_seconds"]


def test_cost_table_takes_the_timing_and_keeps_the_pipeline_times():
    def rows(key, names, split):
        return [
            {key: name, "split": split, "scale": 4, "sample": k, "rel_l2": e, "rel_energy": e,
             "rel_h1": e, "mse": e * 1e-3, "seconds": su + so, "setup_seconds": su,
             "solve_seconds": so, "cores": c}
            for name, (su, so, e, c) in names.items()
            for k in range(2)
        ]  # fmt: skip

    fe, sr = [], []
    for split in ("a", "b"):
        fe += rows(
            "approach", {"fe_direct": (1.0, 3.0, 0.0, 2), "lod_k1": (2.0, 0.5, 0.1, 1)}, split
        )
        sr += [
            {k: v for k, v in r.items() if "_seconds" not in k and k != "cores"}
            for r in rows("method", {"liif": (0.0, 0.5, 0.2, 1)}, split)
        ]
    timing = pd.DataFrame(
        {
            "approach": ["fe_direct", "liif"],
            "split": ["a", "a"],
            "scale": [4, 4],
            "cores": [1, 1],
            "setup_seconds": [1.5, 0.0],
            "solve_seconds": [5.5, 0.25],
            "seconds": [7.0, 0.25],
            "maps": [3, 3],
        }
    )
    t = cost_table(pd.DataFrame(sr), pd.DataFrame(fe), {s: np.ones(2) for s in "ab"}, timing)
    for split in ("a", "b"):  # the timing split's times hold for the other split too
        r = t[t["split"] == split].set_index("approach")
        d = r.loc["fe_direct"]
        assert (d["seconds"], d["setup_seconds"], d["solve_seconds"]) == (7.0, 1.5, 5.5)
        assert (d["cores"], d["core_seconds"], d["timed_alone"]) == (1, 7.0, True)
        # the pipeline's run at its configured ranks stays visible
        assert (d["pipeline_seconds"], d["pipeline_cores"]) == (4.0, 2)
        assert r.loc["liif", "seconds"] == 0.25 and r.loc["liif", "pipeline_seconds"] == 1.5
        assert r.loc["liif", "speedup_vs_direct"] == pytest.approx(28.0)
        # no timing row: the pipeline's time, marked as such
        lod = r.loc["lod_k1"]
        assert (lod["seconds"], lod["timed_alone"], lod["pipeline_seconds"]) == (2.5, False, 2.5)
        assert r.loc["liif", "rel_l2"] == pytest.approx(0.2)


def test_table_cost_plans_one_timing_job_alone():
    jobs, out = dry_run([ROOT / "workflow/presets/tiny.yaml"], "table_cost")
    config = load_config("tiny")
    assert jobs["cost_timing"] == 1 and jobs["table_cost"] == 1
    block = out.split("rule cost_timing:")[1].split("\n\n")[0]
    split = plan.figure_split(config)
    assert f"results/metrics/timing/{split}.csv" in block
    for method in plan.table1_methods(config):
        assert f"results/models/{method}/checkpoint.pt" in block
    # every core: nothing else runs beside it
    assert "threads: 2" in block
    cost = out.split("rule table_cost:")[1].split("\n\n")[0]
    assert f"results/metrics/timing/{split}.csv" in cost
