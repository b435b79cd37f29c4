"""NetCDF datasets of SPEC 1, written sample by sample (bounded memory) and atomically.

    coefficient.nc   A(sample, cy, cx) [+ map_name(sample) for deterministic splits]
    u_x{alpha}.nc    u(sample, y, x), solve_time(sample), iterations(sample), residual(sample)

Files are written with netCDF4 (zlib, float64, one chunk per sample) under a temporary name in
the target directory and renamed into place only when complete; xarray reads them directly.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import netCDF4
import numpy as np

from fesr.cli import atomic_output, close_quietly, remove_quietly
from fesr.fem.positions import cell_centre_positions, node_positions

COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}
REPO = Path(__file__).resolve().parents[3]


def package_versions() -> str:
    """'name=version ...' of the packages that produce the data."""
    out = []
    for name in ("fenics-dolfinx", "petsc4py", "mpi4py", "numpy", "netCDF4"):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name == "fenics-dolfinx":
                try:
                    import dolfinx

                    out.append(f"dolfinx={dolfinx.__version__}")
                except ImportError:
                    pass
    return " ".join(out)


def git_revision() -> str:
    """The repository's commit (with '-dirty' when it has local changes), or 'unknown'."""
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _attr(value):
    """netCDF attributes take numbers, strings and 1-D numeric arrays."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | tuple):
        return np.asarray(value, dtype=np.float64)
    return value


@contextmanager
def atomic_dataset(path: str | os.PathLike):
    """Open a netCDF4 Dataset at a temporary name; rename it to path only on success. On any
    exception, closing the file included, the temporary file is removed, and a failure of the
    file system is an OutputError naming ``path`` and its cause (``fesr.cli.atomic_output``)."""
    path = Path(path)
    if path.parent.is_dir():
        # Leftovers of a killed writer of this file (Snakemake runs one writer per output).
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            remove_quietly(stale)
    with atomic_output(path, f".{path.name}.{os.getpid()}.tmp") as tmp:
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF4")
        try:
            yield ds
        except BaseException:
            close_quietly(ds)
            raise
        ds.close()


def _define_samples(ds, samples: np.ndarray) -> None:
    ds.createDimension("sample", len(samples))
    var = ds.createVariable("sample", "i8", ("sample",))
    var[:] = samples
    var.long_name = "global sample index within the split"


class FieldWriter:
    """u_x{alpha} file (or one shard of it): define, then ``write(k, u, time, its, res)``."""

    def __init__(self, ds, n: int, samples, attrs: dict):
        self.ds, self.n = ds, n
        self.u_max = -np.inf
        _define_samples(ds, np.asarray(samples, dtype=np.int64))
        for axis in ("y", "x"):
            ds.createDimension(axis, n + 1)
            var = ds.createVariable(axis, "f8", (axis,))
            var[:] = node_positions(n)
            var.long_name = f"node position {axis} = index / n (vertex-centred)"
        self.u = ds.createVariable(
            "u", "f8", ("sample", "y", "x"), chunksizes=(1, n + 1, n + 1), **COMPRESSION
        )
        self.u.long_name = "Q1 finite element solution at the mesh nodes, u[i, j] = u(x_j, y_i)"
        self.solve_time = ds.createVariable("solve_time", "f8", ("sample",))
        self.solve_time.units = "s"
        self.solve_time.long_name = (
            "wall time of coefficient projection, assembly, preconditioner set-up and Krylov solve"
        )
        self.setup_time = ds.createVariable("setup_time", "f8", ("sample",))
        self.setup_time.units = "s"
        self.setup_time.long_name = (
            "the part of solve_time spent once per coefficient map: projection, assembly and "
            "preconditioner set-up (the rest is the Krylov solve)"
        )
        self.iterations = ds.createVariable("iterations", "i4", ("sample",))
        self.residual = ds.createVariable("residual", "f8", ("sample",))
        self.residual.long_name = (
            "true relative residual ||b - A x|| / ||b|| of the assembled system, at most the "
            "attribute residual_limit (fesr.fem.solver)"
        )
        for key, value in attrs.items():
            ds.setncattr(key, _attr(value))

    def write(
        self,
        k: int,
        u: np.ndarray,
        solve_time: float,
        iterations: int,
        residual: float,
        setup_time: float = float("nan"),
    ):
        self.u[k] = u
        self.solve_time[k] = solve_time
        self.setup_time[k] = setup_time
        self.iterations[k] = iterations
        self.residual[k] = residual
        self.u_max = max(self.u_max, float(np.max(u)))

    def finish(self) -> None:
        self.ds.setncattr("u_max", self.u_max)


def write_coefficients(path, maps, samples, E: int, attrs: dict, names=None) -> None:
    """coefficient.nc from an iterable of E x E maps (streamed, one sample at a time)."""
    samples = np.asarray(samples, dtype=np.int64)
    with atomic_dataset(path) as ds:
        _define_samples(ds, samples)
        for axis in ("cy", "cx"):
            ds.createDimension(axis, E)
            var = ds.createVariable(axis, "f8", (axis,))
            var[:] = cell_centre_positions(E)
            var.long_name = f"cell centre position {axis[1]} = (index + 0.5) / E (cell-centred)"
        A = ds.createVariable(
            "A", "f8", ("sample", "cy", "cx"), chunksizes=(1, E, E), **COMPRESSION
        )
        A.long_name = "coefficient on cell [cx - eps/2, cx + eps/2] x [cy - eps/2, cy + eps/2]"
        if names is not None:
            var = ds.createVariable("map_name", str, ("sample",))
            for k, name in enumerate(names):
                var[k] = name
        for key, value in attrs.items():
            ds.setncattr(key, _attr(value))
        count = 0
        for k, a in enumerate(maps):
            A[k] = a
            count += 1
        if count != len(samples):
            raise ValueError(f"got {count} maps for {len(samples)} samples")


def read_coefficients(path, samples) -> tuple[np.ndarray, dict]:
    """The maps of the given global sample indices, and the file's attributes."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        stored = ds["sample"][:]
        pos = {int(s): k for k, s in enumerate(stored)}
        missing = [s for s in samples if s not in pos]
        if missing:
            raise ValueError(
                f"{path}: samples {missing[:5]} not in the file (it has {len(stored)})"
            )
        maps = np.stack([np.asarray(ds["A"][pos[s]], dtype=np.float64) for s in samples])
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
    return maps, attrs


def merge_shards(shards, path) -> None:
    """Concatenate shard files into one u_x{alpha} file, one sample at a time."""
    shards = [Path(s) for s in shards]
    if not shards:
        raise ValueError("merge needs at least one shard")
    handles = [netCDF4.Dataset(s) for s in shards]
    for h in handles:
        h.set_auto_mask(False)
    try:
        samples = np.concatenate([np.asarray(h["sample"][:]) for h in handles])
        if not np.array_equal(samples, np.arange(len(samples))):
            raise ValueError(f"shards do not hold samples 0..{len(samples) - 1} in order: {shards}")
        first = handles[0]
        attrs = {k: first.getncattr(k) for k in first.ncattrs() if k not in ("u_max", "shard")}
        for h, s in zip(handles[1:], shards[1:], strict=True):
            if int(h.getncattr("n")) != int(first.getncattr("n")):
                raise ValueError(f"{s}: mesh size differs from {shards[0]}")
        n = int(first.getncattr("n"))
        with atomic_dataset(path) as ds:
            out = FieldWriter(ds, n, samples, attrs)
            k = 0
            for h in handles:
                for local in range(len(h["sample"])):
                    out.write(
                        k,
                        np.asarray(h["u"][local]),
                        float(h["solve_time"][local]),
                        int(h["iterations"][local]),
                        float(h["residual"][local]),
                        float(h["setup_time"][local]) if "setup_time" in h.variables else np.nan,
                    )
                    k += 1
            out.finish()
    finally:
        for h in handles:
            h.close()
