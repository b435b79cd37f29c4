"""Small datasets in the SPEC 1 NetCDF layout, written with xarray, for the data and training tests.

The fields are an analytic function sampled at the nodes of each mesh (not FE solves): the tests
that use them check conventions and bookkeeping, which an analytic field makes exact (the value at
a node is known independently of any array). The real-solve path is covered by the FEM tests and
the Snakemake DAG test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr


def field(x, y, amp):
    """Zero on the boundary, asymmetric in x and y (a swapped axis shows)."""
    return amp * np.sin(np.pi * x) * np.sin(np.pi * y) * (1.0 + 0.5 * x + 0.25 * y**2)


def write_split(
    data_dir,
    split: str,
    samples: int,
    scales,
    n: int = 32,
    E: int = 64,
    seed: int = 0,
    contrast=(1.0, 100.0),
    u_max_attr: bool = True,
) -> Path:
    """coefficient.nc and u_x{alpha}.nc for alpha in scales; amplitude varies with mean(log A)."""
    rng = np.random.default_rng([seed, len(split)])
    out = Path(data_dir) / split
    out.mkdir(parents=True, exist_ok=True)
    A = np.where(rng.random((samples, E, E)) < 0.5, contrast[1], contrast[0])
    amp = 0.5 + np.log(A).mean(axis=(1, 2)) / np.log(contrast[1])
    cc = (np.arange(E) + 0.5) / E
    xr.Dataset({"A": (("sample", "cy", "cx"), A)}, coords={"cx": cc, "cy": cc}).to_netcdf(
        out / "coefficient.nc"
    )
    for alpha in scales:
        m = n * alpha
        t = np.arange(m + 1) / m
        Y, X = np.meshgrid(t, t, indexing="ij")  # u[i, j] = u(x_j, y_i)
        u = np.stack([field(X, Y, a) for a in amp])
        ds = xr.Dataset({"u": (("sample", "y", "x"), u)}, coords={"x": t, "y": t})
        ds.attrs.update(n=m, alpha=alpha, E=E)
        if u_max_attr:
            ds.attrs["u_max"] = float(u.max())
        enc = {"u": {"zlib": True, "complevel": 1, "chunksizes": (1, m + 1, m + 1)}}
        ds.to_netcdf(out / f"u_x{alpha}.nc", encoding=enc)
    return out


def write_dataset(data_dir, train=6, val=2, scales=(1, 2, 4), **kw) -> Path:
    write_split(data_dir, "train", train, scales, seed=0, **kw)
    write_split(data_dir, "val", val, scales, seed=1, **kw)
    return Path(data_dir)


def bicubic_checkpoint(path, config, u_scale: float = 1.5, contrast=(1.0, 100.0), **extra):
    """A bicubic checkpoint (no weights to train) for the CLI tests that need one."""
    from fesr.checkpoint import save_checkpoint
    from fesr.models.registry import resolve_model_config

    return save_checkpoint(
        path,
        model_name="bicubic",
        model_cfg=resolve_model_config("bicubic", config),
        state_dict={},
        iteration=0,
        u_scale=u_scale,
        contrast=list(contrast),
        **extra,
    )
