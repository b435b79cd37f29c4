"""Reading the NetCDF fields of the pipeline with errors that name the offending file.

Every evaluation step reads one sample at a time (``read_sample``) so that a split of
2049 x 2049 fields is never held in memory at once. Outputs are written through
``fesr.cli.atomic_output`` (``write_csv_atomic``): never a partial file, never a temporary one
left behind, and a full or read-only disk said as such.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from fesr.cli import MissingInputError, UsageError, atomic_output, check_match


class FieldFileError(UsageError):
    """A data or prediction file is missing, unreadable or not what was expected (a user error:
    the ``python -m fesr...`` entry points report it in one line, exit 2)."""


class MissingFileError(FieldFileError, MissingInputError):
    """A data or prediction file that does not exist (also a FileNotFoundError)."""


def open_fields(path, variables=("u",), what: str = "field file") -> xr.Dataset:
    """Open a NetCDF file lazily; FieldFileError naming it when missing, corrupt or incomplete."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} '{path}' does not exist")
    try:
        ds = xr.open_dataset(path, cache=False)
    except Exception as err:  # netCDF4/HDF5 raise many types for a truncated or foreign file
        raise FieldFileError(f"{what} '{path}' cannot be read as NetCDF: {err}") from None
    missing = [v for v in variables if v not in ds.variables]
    if missing:
        ds.close()
        raise FieldFileError(
            f"{what} '{path}' lacks variable(s) {missing}; it has {sorted(ds.variables)}"
        )
    return ds


def read_sample(ds: xr.Dataset, k: int, var: str = "u") -> np.ndarray:
    """Sample k of a (sample, y, x) variable as float64; an error naming the file if it fails."""
    try:
        return np.asarray(ds[var].isel(sample=k).values, dtype=np.float64)
    except Exception as err:
        src = ds.encoding.get("source", "<unknown file>")
        raise FieldFileError(f"'{src}': reading {var}[sample={k}] failed: {err}") from None


def check_finite(ds: xr.Dataset, var: str, what: str) -> None:
    """FieldFileError naming the file and the first samples when ``var`` holds NaN or inf
    (read one sample at a time)."""
    bad = [
        k
        for k in range(ds.sizes.get("sample", 1))
        if not np.isfinite(read_sample(ds, k, var)).all()
    ]
    if bad:
        src = ds.encoding.get("source", "<unknown file>")
        raise FieldFileError(
            f"{what} '{src}': {var} holds NaN or inf in {len(bad)} sample(s) (first: "
            f"{bad[:5]}); expected finite values"
        )


# The physics every data file, prediction and checkpoint records: inputs of one run must agree.
PHYSICS_KEYS = ("E", "contrast", "p_high", "source", "lr_n")


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _physics(values: dict) -> dict:
    """The physics keys present in ``values``, as comparable Python values."""
    out = {}
    for key in PHYSICS_KEYS:
        v = _plain(values.get(key))
        if v is None:
            continue
        if key == "contrast":
            out[key] = [float(c) for c in np.atleast_1d(v)]
        elif key in ("E", "lr_n"):
            out[key] = int(v)
        else:
            out[key] = float(v)
    return out


def file_physics(ds: xr.Dataset) -> dict:
    """The physics attributes of a data or prediction file; a field file without ``lr_n``
    gives it as its mesh size ``n`` over its scale ``alpha``."""
    attrs = dict(ds.attrs)
    if "lr_n" not in attrs and "n" in attrs and "alpha" in attrs:
        attrs["lr_n"] = int(_plain(attrs["n"])) // int(_plain(attrs["alpha"]))
    return _physics(attrs)


def checkpoint_physics(ckpt: dict) -> dict:
    """The physics a checkpoint was trained on: its contrast, its model's E and lr_n, and the
    rest of its ``physics`` where it records them."""
    cfg = ckpt.get("model_cfg") or {}
    values = {**(ckpt.get("physics") or {}), "E": cfg.get("E"), "lr_n": cfg.get("lr_n")}
    values["contrast"] = ckpt.get("contrast")
    return _physics(values)


def check_physics(named: list[tuple[str, dict]]) -> None:
    """UsageError naming both sides at the first physics key two sources disagree on; ``named``:
    (source, ``file_physics`` / ``checkpoint_physics``) pairs. A key a source lacks is skipped."""
    for key in PHYSICS_KEYS:
        have = [(src, values[key]) for src, values in named if key in values]
        for other in have[1:]:
            check_match(key, have[0], other)


def check_same_grid(pred: xr.Dataset, ref: xr.Dataset) -> None:
    """Prediction and reference must share samples and the physical node coordinates."""
    psrc, rsrc = pred.encoding.get("source"), ref.encoding.get("source")
    if pred.sizes.get("sample") != ref.sizes.get("sample"):
        raise FieldFileError(
            f"'{psrc}' has {pred.sizes.get('sample')} samples but reference '{rsrc}' has "
            f"{ref.sizes.get('sample')}"
        )
    for c in ("x", "y"):
        if pred.sizes.get(c) != ref.sizes.get(c) or not np.allclose(
            pred[c].values, ref[c].values, atol=1e-12
        ):
            raise FieldFileError(
                f"'{psrc}': coordinate '{c}' (size {pred.sizes.get(c)}) differs from reference "
                f"'{rsrc}' (size {ref.sizes.get(c)})"
            )


def atomic_target(out) -> Path:
    """A temporary name beside ``out`` (rename it to ``out`` when complete)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.with_name(f".{out.name}.tmp{os.getpid()}")


def write_csv_atomic(df, out) -> None:
    with atomic_output(out) as tmp:
        df.to_csv(tmp, index=False)
