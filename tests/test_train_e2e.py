"""End to end with a real method (LIIF) and the real Snakemake `train` rule.

The datasets are small analytic fields in the SPEC 1 layout (tests/synthetic_data.py): the FE
solves are tested by the data tests; here what matters is the training machinery on real files.
"""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from synthetic_data import write_dataset

from fesr.checkpoint import load_checkpoint, load_model
from fesr.data import BatchBuilder, SplitReader, validation_batches
from fesr.models.base import hr_size
from fesr.train import HISTORY_COLUMNS, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), train=6, val=2, scales=(1, 2, 4))


@pytest.fixture()
def config(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["training"].update(
        iterations=20, val_every=5, checkpoint_every=5, lr=1e-3, lr_milestones=[12]
    )
    return cfg


def test_liif_resume_exact_and_predicts(config, data_dir, tmp_path):
    pytest.importorskip("fesr.models.liif")
    torch.set_num_threads(1)
    kw = dict(device="cpu", progress=False)
    whole = load_checkpoint(train("liif", config, data_dir, tmp_path / "a", **kw))
    train("liif", config, data_dir, tmp_path / "b", stop_at=10, **kw)
    resumed = load_checkpoint(train("liif", config, data_dir, tmp_path / "b", **kw))
    for k, v in whole["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), k
    torch.testing.assert_close(
        whole["history"][:, :4], resumed["history"][:, :4], rtol=0, atol=0, equal_nan=True
    )
    hist = whole["history"][1:]  # row 0: the untrained model's validation, no training loss
    assert hist[-5:, 1].mean() < hist[:5, 1].mean()  # it learns something in 20 steps

    model, ckpt = load_model(tmp_path / "a" / "checkpoint.pt")
    reader = SplitReader(data_dir, "val", [1, 2])
    builder = BatchBuilder(reader, ckpt["u_scale"], ckpt["contrast"], model.uses_coefficient, 16)
    batch = validation_batches(builder, [2], 1, seed=0)[0]
    n = config["lr_n"]
    out = model.predict(batch, 2.0, chunk=1000)
    assert out.shape == (1, hr_size(n, 2) + 1, hr_size(n, 2) + 1) and torch.isfinite(out).all()


@pytest.mark.slow
def test_snakemake_train_rule(data_dir, tmp_path):
    """`snakemake` builds bicubic and liif checkpoints through the real rules; a rerun does
    nothing; the config JSON the CLI gets holds the training section."""
    pytest.importorskip("fesr.models.liif")
    work = tmp_path / "work"
    shutil.copytree(data_dir, work / "results" / "data")
    targets = ["results/models/bicubic/checkpoint.pt", "results/models/liif/history.csv"]
    cmd = [sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile")]
    cmd += ["-d", str(work), "--cores", "2", "--configfile", str(ROOT / "config.yaml")]
    cmd += [str(ROOT / "workflow/presets/tiny.yaml")]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    hist = pd.read_csv(work / "results/models/liif/history.csv")
    # tiny: 4 iterations after row 0 (the untrained model); the method's terms after the fixed
    assert list(hist.columns)[:5] == HISTORY_COLUMNS and len(hist) == 5
    ckpt = load_checkpoint(work / "results/models/liif/checkpoint.pt")
    assert ckpt["complete"] and ckpt["iteration"] == 4
    assert (work / "results/logs/train/liif.log").exists()
    assert (work / "results/benchmarks/train/liif.tsv").exists()
    again = subprocess.run(cmd + ["-n"], capture_output=True, text=True, check=False)
    assert "Nothing to be done" in again.stdout + again.stderr
