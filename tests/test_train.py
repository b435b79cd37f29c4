"""The training loop: exact resume, determinism, history, the bicubic (no-parameter) case.

Uses a tiny method registered here (so these tests do not depend on any real method's cost); its
loss draws from the torch, numpy and python RNGs, so an RNG state that is not restored on resume
changes the result. The end-to-end test with a real method is in test_train_e2e.py.
"""

import copy
import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from synthetic_data import write_dataset

from fesr import model_names, train_plan
from fesr.checkpoint import load_checkpoint, load_model
from fesr.coords import sample_cells, sample_nodal
from fesr.data import u_scale
from fesr.models import registry
from fesr.models.base import SRModel
from fesr.train import HISTORY_COLUMNS, main, train


class TinyMethod(SRModel):
    """conv features sampled at the query + MLP, plus the bilinear LR interpolant."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.conv = nn.Conv2d(cfg["in_channels"], 4, 3, padding=1)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))

    def encode(self, inputs):
        return self.conv(inputs["image"]), inputs["lr"]

    def query_encoded(self, state, coords, cell):
        feat, lr = state
        h = torch.cat([sample_cells(feat, coords, "bilinear"), coords, cell * 10], dim=-1)
        return self.mlp(h) + sample_nodal(lr, coords)

    def training_loss(self, batch, step=0):
        pred = self.query(batch, batch["coords"], batch["cell"])
        keep = torch.randperm(pred.shape[1])[: pred.shape[1] // 2]  # torch RNG
        w = 1.0 + 0.01 * np.random.rand() + 0.01 * random.random()  # numpy and python RNGs
        loss = w * F.l1_loss(pred[:, keep], batch["target"][:, keep])
        return loss, {"l1": float(loss.detach())}


@pytest.fixture(autouse=True)
def _tiny_method(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "tinytest", __name__)
    monkeypatch.setitem(registry._CLASSES, "tinytest", TinyMethod)
    # model names are checked against fesr.model_names (the registry's import-free twin)
    monkeypatch.setattr(model_names, "METHOD_NAMES", (*model_names.METHOD_NAMES, "tinytest"))
    TinyMethod.method = "tinytest"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data"), train=6, val=2, scales=(1, 2, 4))


@pytest.fixture()
def config(tiny_config):
    cfg = copy.deepcopy(tiny_config)
    cfg["physics"]["E"] = 64
    cfg["methods"]["tinytest"] = {}
    cfg["training"].update(
        iterations=40,
        batch_size=2,
        sample_q=32,
        train_scales=[2, 4],
        lr=1e-2,
        lr_milestones=[15, 30],
        val_every=10,
        checkpoint_every=10,
        val_samples=2,
    )
    return cfg


def _run(name, config, data_dir, out, **kw):
    torch.set_num_threads(1)
    return train(name, config, data_dir, out, device="cpu", progress=False, **kw)


def _assert_same(a, b):
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    ha, hb = a["history"][:, :4], b["history"][:, :4]  # column 4 is wall time
    assert torch.equal(torch.nan_to_num(ha, nan=-1.0), torch.nan_to_num(hb, nan=-1.0))


def test_train_20_plus_resume_20_equals_40(config, data_dir, tmp_path):
    whole = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "whole"))
    part = _run("tinytest", config, data_dir, tmp_path / "split", stop_at=20)
    assert part.name == "resume.pt" and not (tmp_path / "split" / "checkpoint.pt").exists()
    assert load_checkpoint(part)["iteration"] == 20
    resumed = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "split"))
    assert not (tmp_path / "split" / "resume.pt").exists()
    assert whole["iteration"] == resumed["iteration"] == 40
    _assert_same(whole, resumed)
    # the learning rate schedule went through both milestones
    assert whole["history"][-1, 3] == pytest.approx(1e-2 * 0.25)
    assert whole["history"][1, 1] > 2 * whole["history"][-10:, 1].mean()  # it learns
    # row 0: the untrained model's validation loss, no training loss; it falls with training
    assert whole["history"][0, 0] == 0 and torch.isnan(whole["history"][0, 1])
    assert whole["history"][0, 2] > whole["history"][-1, 2]


def test_interrupted_between_checkpoints_resumes_from_last_one(config, data_dir, tmp_path):
    """stop at 25: the resume file holds 25; a crash would have left 20 - both resume exactly."""
    whole = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "whole"))
    _run("tinytest", config, data_dir, tmp_path / "b", stop_at=25)
    _assert_same(whole, load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "b")))


def test_same_seed_same_result_other_seed_differs(config, data_dir, tmp_path):
    config["training"]["iterations"] = 10
    a = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "a"))
    b = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "b"))
    _assert_same(a, b)
    config["seed"] = 1
    c = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "c"))
    assert not torch.equal(a["state_dict"]["conv.weight"], c["state_dict"]["conv.weight"])


def test_history_csv_and_checkpoint_contents(config, data_dir, tmp_path):
    path = _run("tinytest", config, data_dir, tmp_path / "m")
    hist = pd.read_csv(tmp_path / "m" / "history.csv")
    # the fixed columns, then every key of training_loss's dict
    assert list(hist.columns) == [*HISTORY_COLUMNS, "l1"]
    assert hist["l1"][1:].notna().all() and (hist["l1"][1:] > 0).all()
    assert hist["iteration"].tolist() == list(range(0, 41))  # 0: the untrained model
    assert hist["val_loss"].notna().tolist() == [i % 10 == 0 for i in range(0, 41)]
    assert (hist["seconds"].diff().dropna() >= 0).all() and hist["loss"][1:].notna().all()
    ckpt = load_checkpoint(path)
    for key in (
        "format",
        "version",
        "model_name",
        "model_cfg",
        "state_dict",
        "optimizer",
        "scheduler",
        "iteration",
        "rng",
        "u_scale",
        "contrast",
        "config_hash",
    ):
        assert key in ckpt, key
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    assert ckpt["complete"] and ckpt["model_cfg"]["method"] == "tinytest"
    assert ckpt["u_scale"] == pytest.approx(u_scale(data_dir, [2, 4]))
    model, _ = load_model(path)
    assert isinstance(model, TinyMethod) and not model.training
    # rerun with the same config: nothing to do; a changed config retrains (fresh, not resumed)
    mtime = path.stat().st_mtime_ns
    _run("tinytest", config, data_dir, tmp_path / "m")
    assert path.stat().st_mtime_ns == mtime
    config["training"]["lr"] = 5e-3
    _run("tinytest", config, data_dir, tmp_path / "m", stop_at=10)
    config["training"]["lr"] = 1e-2
    (tmp_path / "m" / "checkpoint.pt").unlink()
    again = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "m"))
    _assert_same(ckpt, again)  # the lr=5e-3 resume file was not used


def test_bicubic_writes_checkpoint_and_one_row_history(config, data_dir, tmp_path):
    path = _run("bicubic", config, data_dir, tmp_path / "bicubic")
    hist = pd.read_csv(tmp_path / "bicubic" / "history.csv")
    assert list(hist.columns) == HISTORY_COLUMNS and len(hist) == 1
    assert 0 < hist["val_loss"][0] < 0.1  # bicubic of a smooth field is close
    model, ckpt = load_model(path)
    assert ckpt["model_name"] == "bicubic" and ckpt["iteration"] == 0


def test_cli_with_config_json(config, data_dir, tmp_path):
    """The workflow's entry point, in a subprocess with the real CLI, on the train_config.json the
    workflow writes (bicubic: no test method)."""
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(train_plan.train_config("bicubic", config)))
    out = tmp_path / "cli"
    args = ["--config-json", str(cfg_path), "--data", str(data_dir), "--out", str(out)]
    cmd = [sys.executable, "-m", "fesr.train", "--model", "bicubic", *args, "--threads", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert (out / "checkpoint.pt").exists() and (out / "history.csv").exists()
    with pytest.raises(ValueError, match="unknown method 'nosuchmethod'"):
        main(["--model", "nosuchmethod", *args])
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="empty/train/u_x2.nc does not exist"):
        main(
            ["--model", "bicubic", *args[:2], "--data", str(tmp_path / "empty"), "--out", str(out)]
        )


def test_cli_validates_the_config_with_the_schema_before_any_work(config, data_dir, tmp_path):
    """A train_config.json lacking a required key, or with a value out of range, is refused with
    every error on one line (the schema's messages), and nothing is written."""
    cfg = copy.deepcopy(train_plan.train_config("bicubic", config))
    del cfg["training"]["lr"]
    cfg["training"]["batch_size"] = 0
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    out = tmp_path / "refused"
    cmd = [sys.executable, "-m", "fesr.train", "--model", "bicubic", "--config-json"]
    cmd += [str(cfg_path), "--data", str(data_dir), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "training.lr: missing" in line and "training.batch_size: 0" in line
    assert not out.exists()
    # the sections a train_config.json leaves out by design are no error
    assert train_plan.train_config_errors(train_plan.train_config("bicubic", config)) == []


def test_dataloader_workers_give_the_same_run(config, data_dir, tmp_path):
    """Batches are a pure function of the iteration: 2 workers == in-process loading."""
    config["training"]["iterations"] = 6
    a = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "a"))
    config["training"]["num_workers"] = 2
    b = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "b"))
    _assert_same(a, b)


def test_patch_training_resumes_exactly_and_preload_changes_nothing(config, data_dir, tmp_path):
    """Patch batches keep the bitwise resume; the in-memory split gives the same run
    as the lazy reader (preload_mb 0: nothing fits, the NetCDF files are read per sample)."""
    config["training"].update(iterations=12, patch=32, val_every=4, checkpoint_every=4)
    whole = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "whole"))
    _run("tinytest", config, data_dir, tmp_path / "split", stop_at=6)
    _assert_same(whole, load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "split")))
    config["training"]["preload_mb"] = 0
    _assert_same(whole, load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "lazy")))
    config["training"]["patch"] = None  # whole fields: another run
    other = load_checkpoint(_run("tinytest", config, data_dir, tmp_path / "fields"))
    assert not torch.equal(other["state_dict"]["conv.weight"], whole["state_dict"]["conv.weight"])


def test_history_gains_a_column_for_a_term_logged_later():
    from fesr.train import History

    h = History()
    h.append([1, 0.5, float("nan"), 1e-3, 0.1], {"l1": 0.5})
    h.append([2, 0.4, 0.3, 1e-3, 0.2], {"l1": 0.4, "scs": 0.9})
    assert h.columns == [*HISTORY_COLUMNS, "l1", "scs"]
    t = h.tensor()
    assert t.shape == (2, 7) and torch.isnan(t[0, 6]) and t[1, 6] == 0.9
