"""Checkpoints: atomic writes, weights_only loading, clear errors for corrupt or foreign files."""

import pickle

import pytest
import torch

from fesr.checkpoint import (
    config_hash,
    load_checkpoint,
    load_model,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from fesr.models.registry import resolve_model_config


def _content(tiny_config, name="bicubic"):
    return dict(
        model_name=name,
        model_cfg=resolve_model_config(name, tiny_config),
        state_dict={},
        iteration=0,
        u_scale=0.07,
        contrast=[1.0, 100.0],
        config_hash=config_hash({"a": 1}),
        rng=rng_states(),
    )


def test_roundtrip_and_model_rebuild(tiny_config, tmp_path):
    path = save_checkpoint(tmp_path / "m" / "checkpoint.pt", **_content(tiny_config))
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]  # no temporary left
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == "fesr-checkpoint" and ckpt["u_scale"] == 0.07
    model, ckpt = load_model(path)
    assert model.method == "bicubic" and ckpt["model_name"] == "bicubic"


def test_rng_states_restore_every_generator():
    import random

    import numpy as np

    state = rng_states()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_states(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_missing_keys_refused(tmp_path):
    with pytest.raises(ValueError, match="missing keys"):
        save_checkpoint(tmp_path / "x.pt", model_name="x")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "text"])
def test_corrupt_file_gives_value_error_naming_it(tiny_config, tmp_path, kind):
    good = save_checkpoint(tmp_path / "good.pt", **_content(tiny_config)).read_bytes()
    bad = tmp_path / f"{kind}.pt"
    data = {
        "garbage": bytes(range(256)) * 10,
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "text": b"model: liif\n",
    }[kind]
    bad.write_bytes(data)
    with pytest.raises(ValueError, match=f"{kind}.pt"):
        load_checkpoint(bad)


class Foreign:  # a pickled class: weights_only must refuse to run its code
    def __init__(self):
        self.x = 1


@pytest.mark.parametrize("kind", ["plain_dict", "tensor", "pickled_class", "raw_pickle"])
def test_foreign_file_gives_value_error_naming_it(tmp_path, kind):
    bad = tmp_path / f"{kind}.pt"
    if kind == "plain_dict":
        torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, bad)
    elif kind == "tensor":
        torch.save(torch.ones(3), bad)
    elif kind == "pickled_class":
        torch.save({"obj": Foreign()}, bad)
    else:
        bad.write_bytes(pickle.dumps({"format": "fesr-checkpoint"}, protocol=2))
    with pytest.raises(ValueError, match=f"{kind}.pt"):
        load_checkpoint(bad)


def test_wrong_version_and_mismatched_weights(tiny_config, tmp_path):
    content = _content(tiny_config, "liif")
    path = tmp_path / "v.pt"
    torch.save({"format": "fesr-checkpoint", "version": 99, **content}, path)
    with pytest.raises(ValueError, match="version 99"):
        load_checkpoint(path)
    content["state_dict"] = {"encoder.nonsense": torch.zeros(1)}
    save_checkpoint(path, **content)
    with pytest.raises(ValueError, match="do not fit model 'liif'"):
        load_model(path)
