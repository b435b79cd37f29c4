"""Predict u on the HR node grids of one split, at one or several scales, with a trained model.

``python -m fesr.evaluate.predict --model liif --checkpoint results/models/liif/checkpoint.pt
--lr-data results/data/test_random/u_x1.nc --coefficient results/data/test_random/coefficient.nc
--split test_random --alpha 2 8 --out P/u_x2.nc P/u_x8.nc
[--reference results/data/test_random/u_x2.nc results/data/test_random/u_x8.nc
--metrics-out M/x2.csv M/x8.csv]``

One process per (model, split) (the evaluation stage's job): the checkpoint is loaded once, each
sample is encoded once (``model.encode``) and every scale is predicted from that encoding
(``model.predict(..., state=...)``; a method whose ``predict`` takes no ``state`` re-encodes).
Streams sample by sample: one (m+1)^2 field per scale is in memory at a time and is appended to
its output file (netCDF4, one compressed chunk per sample) before the next sample starts.
``u`` is in the dataset's physical units (normalised prediction times the checkpoint's
``u_scale``). ``seconds`` is what a stand-alone inference at that scale costs: the sample's encode
time plus that scale's query time; ``peak_mb`` likewise the larger of the encode's peak and the
encoding's resident memory plus that scale's peak. With ``--reference``/``--metrics-out`` the
per-sample metrics of each scale (``fesr.evaluate.metrics``) are written too, so the stage needs
no second process per scale. A stochastic method (IDM) gets the seed ``--seed * 100003 + sample``
for each sample, identical for every scale, so a rerun gives the same fields.

Inputs are cross-checked before any output is opened; a mismatch is refused in one line naming
both sides, exit 2 (``fesr.cli``): ``--model`` against the checkpoint's model; the LR file's mesh
size against the checkpoint's ``lr_n``, its ``alpha`` attribute against 1 and its
``effective_mean`` attribute against the checkpoint's ``input_field`` (``u_x1.nc`` for ``lr``,
``u_x1_geometric.nc`` for a ``hom`` model, ``fesr.data.dataset``); the coefficient
map size against the checkpoint's ``E``; the physics (E, contrast, p_high, source, lr_n:
``fesr.evaluate.io.PHYSICS_KEYS``) of the LR, coefficient and reference files against each other
and the checkpoint's; the split and seed attributes of LR, coefficient and reference files
against each other and ``--split``; sample counts; every scale a power of two >= 2, matching a
``u_x{alpha}`` output name and its reference's ``alpha`` and mesh size. NaN or inf in the LR
fields, the coefficients or the checkpoint's ``u_scale`` is refused the same way. The
prediction files record the inputs' physics, which ``fesr.evaluate.metrics`` checks against the
reference's. Outputs are written through ``fesr.cli.atomic_output``: a failure leaves no file.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import re
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import netCDF4
import numpy as np
import psutil
import torch
from tqdm import tqdm

from fesr.checkpoint import resolve_device
from fesr.cli import (
    MissingInputError,
    UsageError,
    atomic_output,
    check_match,
    close_quietly,
    run_main,
)
from fesr.coords import node_positions
from fesr.evaluate.io import (
    check_finite,
    check_physics,
    checkpoint_physics,
    file_physics,
    open_fields,
    read_sample,
    write_csv_atomic,
)
from fesr.evaluate.memory import PeakMemory
from fesr.models.base import hr_size

PROG = "python -m fesr.evaluate.predict"
SEED_STRIDE = 100003  # per-sample seed = seed * SEED_STRIDE + sample index
OUT_NAME = re.compile(r"u_x(\d+)\.nc$")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _resident_bytes(device) -> int:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return psutil.Process().memory_info().rss


def sample_seed(seed: int, sample: int) -> int:
    return int(seed) * SEED_STRIDE + int(sample)


def create_output(path, m: int, samples: np.ndarray, attrs: dict) -> netCDF4.Dataset:
    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
    try:
        _define_output(nc, m, samples, attrs)
    except BaseException:
        close_quietly(nc)
        raise
    return nc


def _define_output(nc, m: int, samples: np.ndarray, attrs: dict) -> None:
    nc.createDimension("sample", len(samples))
    nc.createDimension("y", m + 1)
    nc.createDimension("x", m + 1)
    s = nc.createVariable(
        "sample", samples.dtype if samples.dtype.kind in "iu" else "i8", ("sample",)
    )
    s[:] = samples
    for name in ("y", "x"):
        v = nc.createVariable(name, "f8", (name,))
        v[:] = node_positions(m)
        v.units = "1"
        v.long_name = f"physical {name} coordinate of the HR nodes"
    u = nc.createVariable(
        "u", "f4", ("sample", "y", "x"), zlib=True, complevel=1, chunksizes=(1, m + 1, m + 1)
    )
    u.long_name = "predicted solution at the HR nodes (physical units)"
    for name, doc in (
        ("seconds", "inference wall time per sample: encode + this scale's queries [s]"),
        ("peak_mb", "peak inference memory per sample [MiB]"),
    ):
        v = nc.createVariable(name, "f8", ("sample",))
        v.long_name = doc
    nc.setncatts({k: (str(v) if isinstance(v, bool | type(None)) else v) for k, v in attrs.items()})


# -- input cross-checks (before any output is opened) ---------------------------------------------
def _attr(ds, key):
    """A global attribute as a plain Python value (None if absent)."""
    value = ds.attrs.get(key)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_scales(alphas, outs) -> None:
    if len(outs) != len(alphas):
        raise UsageError(f"--out has {len(outs)} file(s) but --alpha has {len(alphas)} scale(s)")
    if len(set(alphas)) != len(alphas):
        raise UsageError(f"--alpha {' '.join(map(str, alphas))}: a scale is given twice")
    for alpha, out in zip(alphas, outs, strict=True):
        if alpha < 2 or alpha & (alpha - 1):
            raise UsageError(
                f"--alpha {alpha}: not a valid scale; expected a power of two >= 2 "
                "(the HR meshes n = lr_n * alpha, alpha in 2, 4, ..., 64)"
            )
        named = OUT_NAME.search(Path(out).name)
        if named:
            check_match("scale", ("--alpha", alpha), (f"--out {out}", int(named.group(1))))


def check_input_field(a, ckpt, lr_ds) -> None:
    """The LR file is the solve the model was trained on: its ``effective_mean`` attribute is the
    one of the checkpoint's ``input_field`` (``lr`` for a checkpoint without one)."""
    from fesr.data.dataset import check_lr_file_mean

    data = ckpt.get("data") if isinstance(ckpt.get("data"), dict) else {}
    input_field = data.get("input_field") or (ckpt.get("model_cfg") or {}).get("input_field")
    try:
        check_lr_file_mean(
            f"LR data file {a.lr_data}", _attr(lr_ds, "effective_mean"), input_field or "lr"
        )
    except ValueError as err:
        raise UsageError(f"{err} (checkpoint {a.checkpoint})") from None


def check_inputs(a, ckpt, lr_ds, coef_ds) -> str | None:
    """Every cross-check of the module docstring; returns the split (None if nothing names it)."""
    check_match("model", ("--model", a.model), (f"checkpoint {a.checkpoint}", ckpt["model_name"]))
    cfg = ckpt.get("model_cfg") or {}
    lr_src, coef_src = f"LR data file {a.lr_data}", f"coefficient file {a.coefficient}"
    lr_alpha = _attr(lr_ds, "alpha")
    if lr_alpha is not None and int(lr_alpha) != 1:
        raise UsageError(
            f"{lr_src} is the field at alpha {lr_alpha}, not the LR field (alpha 1, u_x1.nc)"
        )
    check_input_field(a, ckpt, lr_ds)
    n = int(lr_ds["u"].shape[-1]) - 1
    if cfg.get("lr_n") is not None:
        check_match(
            "LR mesh size n",
            (lr_src, n),
            (f"checkpoint {a.checkpoint}", int(cfg["lr_n"])),
        )
    if cfg.get("E") is not None:
        check_match(
            "coefficient cells per side E",
            (coef_src, int(coef_ds["A"].shape[-1])),
            (f"checkpoint {a.checkpoint}", int(cfg["E"])),
        )
    check_match(
        "number of samples",
        (lr_src, int(lr_ds["u"].shape[0])),
        (coef_src, int(coef_ds["A"].shape[0])),
    )
    check_physics(
        [
            (lr_src, file_physics(lr_ds)),
            (coef_src, file_physics(coef_ds)),
            (f"checkpoint {a.checkpoint}", checkpoint_physics(ckpt)),
        ]
    )
    u_scale = ckpt["u_scale"]
    if not isinstance(u_scale, int | float) or not math.isfinite(u_scale) or u_scale <= 0:
        raise UsageError(
            f"checkpoint {a.checkpoint}: u_scale {u_scale!r}; expected a finite number > 0"
        )
    check_finite(lr_ds, "u", "LR data file")
    check_finite(coef_ds, "A", "coefficient file")
    sources = [(lr_src, lr_ds), (coef_src, coef_ds)]
    split = a.split
    for key in ("split", "seed"):
        named = [(src, _attr(ds, key)) for src, ds in sources if _attr(ds, key) is not None]
        if key == "split" and a.split is not None:
            named.insert(0, ("--split", a.split))
        for other in named[1:]:
            check_match(key, named[0], other)
        if key == "split" and named:
            split = named[0][1]
    return split


def open_references(a, n, split, nsamp, physics: dict) -> list:
    """The reference data files of --reference, checked against scale, mesh, split, samples and
    the LR file's ``physics``."""
    out = []
    try:
        for alpha, path in zip(a.alpha, a.reference, strict=True):
            ds = open_fields(path, ("u",), what="reference data file")
            out.append(ds)
            src = f"reference data file {path}"
            if _attr(ds, "alpha") is not None:
                check_match("scale", ("--alpha", alpha), (src, int(_attr(ds, "alpha"))))
            check_match(
                "HR mesh size",
                (f"--alpha {alpha}", hr_size(n, alpha)),
                (src, ds["u"].shape[-1] - 1),
            )
            if split is not None and _attr(ds, "split") is not None:
                check_match("split", ("the inputs", split), (src, _attr(ds, "split")))
            check_match("number of samples", ("the inputs", nsamp), (src, int(ds["u"].shape[0])))
            check_physics([(f"LR data file {a.lr_data}", physics), (src, file_physics(ds))])
    except BaseException:
        for ds in out:
            ds.close()
        raise
    return out


# -- prediction ----------------------------------------------------------------------------------
def _predict_kwargs(model) -> tuple[bool, bool]:
    """(takes state, takes seed): what this method's ``predict`` accepts."""
    params = inspect.signature(model.predict).parameters
    return "state" in params, "seed" in params


def predict_split(a) -> None:
    from fesr.checkpoint import load_model
    from fesr.data.conditioning import make_inputs

    check_scales(a.alpha, a.out)
    if a.reference is not None and len(a.reference) != len(a.alpha):
        raise UsageError(
            f"--reference has {len(a.reference)} file(s) but --alpha has {len(a.alpha)} scale(s)"
        )
    if (a.metrics_out is None) != (a.reference is None) or (
        a.metrics_out is not None and len(a.metrics_out) != len(a.alpha)
    ):
        raise UsageError("--reference and --metrics-out go together, one file per --alpha each")
    dev = resolve_device(a.device)
    if not os.path.isfile(a.checkpoint):
        raise MissingInputError(f"checkpoint '{a.checkpoint}' of model '{a.model}' does not exist")
    try:
        model, ckpt = load_model(a.checkpoint, dev)
    except ValueError as err:  # corrupt, foreign or not fitting its model: names the file
        raise UsageError(str(err).splitlines()[0]) from None
    model.eval()
    lr_ds = open_fields(a.lr_data, ("u",), what="LR data file")
    coef_ds = open_fields(a.coefficient, ("A",), what="coefficient file")
    refs = []
    try:
        split = check_inputs(a, ckpt, lr_ds, coef_ds)
        nsamp = int(lr_ds["u"].shape[0])
        n = int(lr_ds["u"].shape[-1]) - 1
        if a.reference is not None:
            if split is None:
                raise UsageError("--reference needs --split (no input file names its split)")
            refs = open_references(a, n, split, nsamp, file_physics(lr_ds))
        samples = (
            np.asarray(lr_ds["sample"].values) if "sample" in lr_ds.coords else np.arange(nsamp)
        )
        physics = {**checkpoint_physics(ckpt), **file_physics(lr_ds), **file_physics(coef_ds)}
        _write_predictions(
            a, model, ckpt, make_inputs, (lr_ds, coef_ds), samples, n, split, dev, physics
        )
    finally:
        lr_ds.close()
        coef_ds.close()
        for ds in refs:
            ds.close()
    if a.reference is not None:
        from fesr.evaluate.metrics import prediction_metrics

        for alpha, out, ref, part in zip(a.alpha, a.out, a.reference, a.metrics_out, strict=True):
            write_csv_atomic(
                prediction_metrics(out, ref, a.coefficient, a.model, split, alpha), part
            )


def _write_predictions(a, model, ckpt, make_inputs, inputs_ds, samples, n, split, dev, physics):
    sizes = [hr_size(n, alpha) for alpha in a.alpha]
    base_attrs = {
        "model": a.model,
        "method": getattr(model, "method", "?"),
        "checkpoint": str(a.checkpoint),
        "lr_n": int(n),
        "u_scale": float(ckpt["u_scale"]),
        "lr_data": str(a.lr_data),
        "coefficient": str(a.coefficient),
        "device": str(dev),
        "torch_version": torch.__version__,
        "chunk": int(a.chunk),
        "seed": int(a.seed),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if split is not None:
        base_attrs["split"] = str(split)
    base_attrs |= {k: v for k, v in physics.items() if k != "lr_n"}
    with ExitStack() as outputs:
        tmps = [outputs.enter_context(atomic_output(out)) for out in a.out]
        files = []
        try:
            for alpha, m, tmp in zip(a.alpha, sizes, tmps, strict=True):
                attrs = base_attrs | {"alpha": int(alpha), "n": int(m)}
                files.append(create_output(tmp, m, samples, attrs))
            _predict_samples(a, model, ckpt, make_inputs, inputs_ds, samples, dev, sizes, files)
        except BaseException:
            for nc in files:
                close_quietly(nc)
            raise
        for nc in files:
            nc.close()  # a full disk may show first here; atomic_output then removes every file


def _predict_samples(a, model, ckpt, make_inputs, inputs_ds, samples, dev, sizes, files):
    """Every sample at every scale, appended to the open prediction files."""
    lr_ds, coef_ds = inputs_ds
    u_scale = float(ckpt["u_scale"])
    takes_state, takes_seed = _predict_kwargs(model)
    label = " ".join(f"x{alpha}" for alpha in a.alpha)
    for k in tqdm(range(len(samples)), desc=f"predict {a.model} {label}"):
        lr = torch.as_tensor(read_sample(lr_ds, k) / u_scale, dtype=torch.float32)
        coef = torch.as_tensor(read_sample(coef_ds, k, "A"), dtype=torch.float32)
        inputs = make_inputs(
            lr[None, None].to(dev),
            coef[None, None].to(dev),
            model.uses_coefficient,
            ckpt.get("contrast"),
        )
        seed = sample_seed(a.seed, samples[k])
        with torch.inference_mode():
            state, enc_seconds, enc_peak, enc_resident = None, 0.0, 0.0, 0.0
            if takes_state:
                before = _resident_bytes(dev)
                with PeakMemory(dev) as pm:
                    _sync(dev)
                    t0 = time.perf_counter()
                    state = model.encode(inputs)
                    _sync(dev)
                    enc_seconds = time.perf_counter() - t0
                enc_peak = pm.peak_mb
                enc_resident = max(0.0, (_resident_bytes(dev) - before) / 2**20)
            for alpha, m, nc in zip(a.alpha, sizes, files, strict=True):
                kwargs = {"chunk": a.chunk}
                if takes_state:
                    kwargs["state"] = state
                if takes_seed:
                    kwargs["seed"] = seed
                torch.manual_seed(seed)  # any other stochastic part: reproducible too
                with PeakMemory(dev) as pm:
                    _sync(dev)
                    t0 = time.perf_counter()
                    pred = model.predict(inputs, alpha, **kwargs)
                    _sync(dev)
                    seconds = time.perf_counter() - t0
                field = pred[0].to("cpu", torch.float64).numpy() * u_scale
                if field.shape != (m + 1, m + 1):
                    raise ValueError(
                        f"model '{a.model}' predicted shape {field.shape} at x{alpha}, "
                        f"expected {(m + 1, m + 1)}"
                    )
                nc["u"][k] = field.astype(np.float32)
                nc["seconds"][k] = enc_seconds + seconds
                nc["peak_mb"][k] = max(enc_peak, enc_resident + pm.peak_mb)
                del pred, field
            del state


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--lr-data", required=True)
    ap.add_argument("--coefficient", required=True)
    ap.add_argument("--split", help="the split of the inputs (checked against their attributes)")
    ap.add_argument("--alpha", type=int, nargs="+", required=True, help="one or more scales")
    ap.add_argument("--out", nargs="+", required=True, help="one prediction file per --alpha")
    ap.add_argument("--reference", nargs="+", help="HR data file per --alpha (for metrics)")
    ap.add_argument("--metrics-out", nargs="+", help="metrics CSV per --alpha")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args(argv)


def main(argv=None) -> None:
    a = parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    predict_split(a)


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
