"""Predict u on the HR node grid of one split at one scale with a trained model; write NetCDF.

``python -m fesr.evaluate.predict --model liif --checkpoint results/models/liif/checkpoint.pt
--lr-data results/data/test_random/u_x1.nc --coefficient results/data/test_random/coefficient.nc
--alpha 8 --out results/predictions/liif/test_random/u_x8.nc``

Streams sample by sample: one (m+1)^2 prediction is in memory at a time and is appended to the
output file (netCDF4, one compressed chunk per sample) before the next starts. The variable ``u``
is in the dataset's physical units (normalised prediction times the checkpoint's ``u_scale``);
``seconds`` and ``peak_mb`` record each sample's inference wall time and peak memory.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

import netCDF4
import numpy as np
import torch
from tqdm import tqdm

from fesr.coords import node_positions
from fesr.evaluate.io import atomic_target, open_fields, read_sample
from fesr.evaluate.memory import PeakMemory
from fesr.models.base import hr_size


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def create_output(path, m: int, samples: np.ndarray, attrs: dict) -> netCDF4.Dataset:
    nc = netCDF4.Dataset(path, "w", format="NETCDF4")
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
        ("seconds", "inference wall time per sample [s]"),
        ("peak_mb", "peak inference memory per sample [MiB]"),
    ):
        v = nc.createVariable(name, "f8", ("sample",))
        v.long_name = doc
    nc.setncatts({k: (str(v) if isinstance(v, bool | type(None)) else v) for k, v in attrs.items()})
    return nc


def predict_split(
    model_name, checkpoint, lr_path, coef_path, alpha, out, chunk=65536, device="auto", seed=0
) -> None:
    from fesr.checkpoint import load_model
    from fesr.data.conditioning import make_inputs

    dev = resolve_device(device)
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint '{checkpoint}' of model '{model_name}' does not exist")
    model, ckpt = load_model(checkpoint, dev)
    model.eval()
    u_scale = float(ckpt["u_scale"])
    contrast = ckpt.get("contrast")
    lr_ds = open_fields(lr_path, ("u",), what="LR data file")
    coef_ds = open_fields(coef_path, ("A",), what="coefficient file")
    try:
        nsamp = lr_ds.sizes["sample"]
        if coef_ds.sizes["sample"] != nsamp:
            raise ValueError(
                f"'{coef_path}' has {coef_ds.sizes['sample']} samples, '{lr_path}' has {nsamp}"
            )
        n = lr_ds.sizes["x"] - 1
        m = hr_size(n, alpha)
        samples = (
            np.asarray(lr_ds["sample"].values) if "sample" in lr_ds.coords else np.arange(nsamp)
        )
        attrs = {
            "model": model_name,
            "method": getattr(model, "method", "?"),
            "checkpoint": str(checkpoint),
            "alpha": int(alpha),
            "lr_n": int(n),
            "n": int(m),
            "u_scale": u_scale,
            "lr_data": str(lr_path),
            "coefficient": str(coef_path),
            "device": str(dev),
            "torch_version": torch.__version__,
            "chunk": int(chunk),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = atomic_target(out)
        nc = create_output(tmp, m, samples, attrs)
        done = False
        try:
            for k in tqdm(range(nsamp), desc=f"predict {model_name} x{alpha}"):
                lr = torch.as_tensor(read_sample(lr_ds, k) / u_scale, dtype=torch.float32)
                coef = torch.as_tensor(read_sample(coef_ds, k, "A"), dtype=torch.float32)
                inputs = make_inputs(
                    lr[None, None].to(dev),
                    coef[None, None].to(dev),
                    model.uses_coefficient,
                    contrast,
                )
                torch.manual_seed(seed * 100003 + k)  # stochastic samplers (IDM) reproducible
                with torch.no_grad(), PeakMemory(dev) as pm:
                    _sync(dev)
                    t0 = time.perf_counter()
                    pred = model.predict(inputs, alpha, chunk=chunk)
                    _sync(dev)
                    seconds = time.perf_counter() - t0
                field = pred[0].detach().to("cpu", torch.float64).numpy() * u_scale
                if field.shape != (m + 1, m + 1):
                    raise ValueError(
                        f"model '{model_name}' predicted shape {field.shape} at x{alpha}, "
                        f"expected {(m + 1, m + 1)}"
                    )
                nc["u"][k] = field.astype(np.float32)
                nc["seconds"][k] = seconds
                nc["peak_mb"][k] = pm.peak_mb
                del pred, field
            done = True
        finally:
            nc.close()
            if not done:
                tmp.unlink(missing_ok=True)  # never leave a half-written prediction behind
        os.replace(tmp, out)
    finally:
        lr_ds.close()
        coef_ds.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--lr-data", required=True)
    ap.add_argument("--coefficient", required=True)
    ap.add_argument("--alpha", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, a.threads))
    predict_split(
        a.model, a.checkpoint, a.lr_data, a.coefficient, a.alpha, a.out, a.chunk, a.device, a.seed
    )


if __name__ == "__main__":
    main()
