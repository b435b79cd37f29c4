"""Reading the NetCDF fields of the pipeline with errors that name the offending file.

Every evaluation step reads one sample at a time (``read_sample``) so that a split of
2049 x 2049 fields is never held in memory at once.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from fesr.cli import MissingInputError, UsageError


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
    tmp = atomic_target(out)
    df.to_csv(tmp, index=False)
    os.replace(tmp, out)
