"""Lazy access to the NetCDF datasets of SPEC 1 and the dataset normalisation constant.

``results/data/{split}/coefficient.nc`` holds ``A(sample, cy, cx)``; ``u_x{alpha}.nc`` holds
``u(sample, y, x)``. ``SplitReader`` reads one sample at a time through netCDF4 (never a whole
variable), so memory stays bounded however large the split is; an optional LRU cache of decoded
samples, bounded in bytes, saves re-decompressing the HR fields every epoch. When the whole split
fits a stated budget, ``preload`` holds it in memory as float32 arrays instead (read in blocks of
samples, so the peak stays the arrays plus one block), and every read is a view of them.

Input field (``input_field``): which LR solve the reader serves as scale 1, i.e. what the encoder
and the skip see. ``lr`` is ``u_x1.nc``, the LR solve with the arithmetic mean of the covered
coefficient cells (the L2 projection of SPEC 1); ``hom_geometric`` is ``u_x1_geometric.nc``, the
LR solve with their geometric mean (``fesr.fem.generate solve --effective-mean geometric``, the
exact effective conductivity of a two-phase random medium at p = 1/2). Each file's
``effective_mean`` attribute (absent for ``u_x1.nc``) is checked against the choice, so a wrong
file is refused on open. The HR fields and ``u_scale`` do not depend on it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import netCDF4
import numpy as np

COEFFICIENT_FILE = "coefficient.nc"
COEFFICIENT_VAR = "A"
FIELD_VAR = "u"
# input_field -> the effective_mean attribute of its LR file (None: the arithmetic-mean u_x1.nc)
INPUT_FIELDS = {"lr": None, "hom_geometric": "geometric"}
DEFAULT_INPUT_FIELD = "lr"


def field_path(data_dir, split: str, alpha: int) -> Path:
    return Path(data_dir) / split / f"u_x{int(alpha)}.nc"


def check_input_field(input_field) -> str:
    if not isinstance(input_field, str) or input_field not in INPUT_FIELDS:
        raise ValueError(
            f"input_field must be one of {', '.join(INPUT_FIELDS)}, got {input_field!r}"
        )
    return input_field


def lr_field_path(data_dir, split: str, input_field: str = DEFAULT_INPUT_FIELD) -> Path:
    """The LR file that ``input_field`` selects: u_x1.nc or u_x1_{mean}.nc."""
    mean = INPUT_FIELDS[check_input_field(input_field)]
    if mean is None:
        return field_path(data_dir, split, 1)
    return Path(data_dir) / split / f"u_x1_{mean}.nc"


def check_lr_file_mean(path, effective_mean, input_field: str) -> None:
    """Refuse an LR file whose ``effective_mean`` attribute (None if absent) is not the one
    ``input_field`` selects."""
    want = INPUT_FIELDS[check_input_field(input_field)]
    have = None if effective_mean is None else str(effective_mean)
    if have != want:
        raise ValueError(
            f"{path}: LR field with effective_mean {have or 'none (arithmetic)'}; "
            f"input_field '{input_field}' expects {want or 'none (arithmetic, u_x1.nc)'}"
        )


def coefficient_path(data_dir, split: str) -> Path:
    return Path(data_dir) / split / COEFFICIENT_FILE


def integer_scale(alpha) -> int:
    """Datasets exist at integer factors only; 4.0 -> 4, 3.7 -> ValueError."""
    a = float(alpha)
    if a != round(a) or a < 1:
        raise ValueError(f"dataset scales are integers >= 1, got {alpha}")
    return int(round(a))


def _open(path: Path) -> netCDF4.Dataset:
    if not path.exists():
        raise FileNotFoundError(
            f"dataset file {path} does not exist (build it with the data rules)"
        )
    try:
        ds = netCDF4.Dataset(str(path), "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable NetCDF file ({err})") from None
    ds.set_auto_mask(False)
    return ds


def u_scale(data_dir, train_scales, split: str = "train") -> float:
    """The dataset constant: max of the ``u_max`` attribute of the train split's u_x{alpha}.nc
    over the training scales (computed streaming, one sample at a time, where it is missing)."""
    best = -np.inf
    for alpha in train_scales:
        path = field_path(data_dir, split, integer_scale(alpha))
        with _open(path) as ds:
            if "u_max" in ds.ncattrs():
                value = float(ds.getncattr("u_max"))
            else:
                var = _variable(ds, FIELD_VAR, path)
                value = max(float(np.max(var[k])) for k in range(var.shape[0]))
        best = max(best, value)
    if not np.isfinite(best) or best <= 0:
        raise ValueError(f"u_scale: the train fields in {data_dir} have max {best}; expected > 0")
    return float(best)


def _variable(ds: netCDF4.Dataset, name: str, path: Path):
    if name not in ds.variables:
        raise ValueError(f"{path}: no variable '{name}' (has {sorted(ds.variables)})")
    var = ds.variables[name]
    if var.ndim != 3:
        raise ValueError(
            f"{path}: variable '{name}' should be (sample, y, x), got dims {var.dimensions}"
        )
    return var


class SplitReader:
    """Per-sample, read-only access to one split: ``coefficient(k)`` (E, E) and ``field(alpha, k)``
    (n*alpha+1, n*alpha+1), both float32 numpy arrays.

    Files are opened on first use in each process (safe with DataLoader workers, which fork).
    ``cache_bytes`` bounds an LRU cache of decoded samples (0 disables it). ``input_field``
    selects the file read as scale 1 (module docstring).
    """

    def __init__(
        self,
        data_dir,
        split: str,
        scales,
        cache_bytes: int = 0,
        input_field: str = DEFAULT_INPUT_FIELD,
    ):
        self.data_dir, self.split = Path(data_dir), split
        self.input_field = check_input_field(input_field)
        self.scales = sorted({integer_scale(a) for a in scales})
        self.cache_bytes = int(cache_bytes)
        self._handles: dict = {}
        self._pid = None
        self._cache: OrderedDict = OrderedDict()
        self._cached = 0
        self._arrays: dict = {}  # key -> (n_samples, ...) float32, filled by preload()
        sizes = {}
        with _open(coefficient_path(data_dir, split)) as ds:
            var = _variable(ds, COEFFICIENT_VAR, coefficient_path(data_dir, split))
            sizes["coef"] = var.shape[0]
            self.E = int(var.shape[-1])
        self.node_sizes = {}
        for alpha in self.scales:
            path = self._path(alpha)
            with _open(path) as ds:
                if alpha == 1:
                    attrs = ds.ncattrs()
                    mean = ds.getncattr("effective_mean") if "effective_mean" in attrs else None
                    check_lr_file_mean(path, mean, self.input_field)
                var = _variable(ds, FIELD_VAR, path)
                sizes[alpha] = var.shape[0]
                if var.shape[1] != var.shape[2]:
                    raise ValueError(f"{path}: field is not square: {var.shape[1:]}")
                self.node_sizes[alpha] = int(var.shape[-1])
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"{self.data_dir / split}: files disagree on the sample count: {sizes}"
            )
        self.n_samples = next(iter(sizes.values()))
        if 1 in self.node_sizes:
            n = self.node_sizes[1] - 1
            for alpha, nodes in self.node_sizes.items():
                if nodes != n * alpha + 1:
                    raise ValueError(
                        f"{self._path(alpha)}: {nodes} nodes per side; "
                        f"expected {n * alpha + 1} = {n} * {alpha} + 1"
                    )

    def _path(self, alpha: int) -> Path:
        if alpha == 1:
            return lr_field_path(self.data_dir, self.split, self.input_field)
        return field_path(self.data_dir, self.split, alpha)

    def __len__(self) -> int:
        return self.n_samples

    @property
    def preloaded(self) -> bool:
        return bool(self._arrays)

    def nbytes(self) -> int:
        """Bytes of the whole split (coefficient and every opened scale) as float32."""
        per = self.E**2 + sum(nodes**2 for nodes in self.node_sizes.values())
        return 4 * per * self.n_samples

    def preload(self, max_bytes: int, block: int = 64) -> bool:
        """Hold the whole split in memory as float32 if it fits ``max_bytes``; returns whether it
        did. Reads ``block`` samples at a time (a whole float64 variable never materialises)."""
        if self._arrays or self.nbytes() > int(max_bytes):
            return bool(self._arrays)
        arrays = {}
        for key in ["coef", *self.scales]:
            var = self._var(key)
            arr = np.empty(var.shape, dtype=np.float32)
            for start in range(0, self.n_samples, block):
                arr[start : start + block] = var[start : start + block]
            arrays[key] = arr
        self._arrays = arrays
        self._cache.clear()  # the arrays supersede the LRU cache
        self._cached = 0
        return True

    def _var(self, key):
        if self._pid != os.getpid():  # a forked worker must not share the parent's HDF5 handles
            self._handles, self._pid = {}, os.getpid()
        if key not in self._handles:
            if key == "coef":
                path, name = coefficient_path(self.data_dir, self.split), COEFFICIENT_VAR
            else:
                path, name = self._path(key), FIELD_VAR
            ds = _open(path)
            self._handles[key] = (ds, _variable(ds, name, path))
        return self._handles[key][1]

    def _read(self, key, k: int) -> np.ndarray:
        if not 0 <= k < self.n_samples:
            raise IndexError(f"sample {k} out of range for {self.split} ({self.n_samples} samples)")
        if self._arrays:
            return self._arrays[key][k]
        hit = self._cache.get((key, k))
        if hit is not None:
            self._cache.move_to_end((key, k))
            return hit
        arr = np.asarray(self._var(key)[k], dtype=np.float32)
        if arr.nbytes <= self.cache_bytes:
            self._cache[(key, k)] = arr
            self._cached += arr.nbytes
            while self._cached > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return arr

    def coefficient(self, k: int) -> np.ndarray:
        return self._read("coef", int(k))

    def field(self, alpha, k: int) -> np.ndarray:
        alpha = integer_scale(alpha)
        if alpha not in self.scales:
            raise ValueError(f"{self.split}: scale {alpha} not opened (have {self.scales})")
        return self._read(alpha, int(k))

    def close(self) -> None:
        for ds, _ in self._handles.values():
            try:
                ds.close()
            except RuntimeError:
                pass
        self._handles = {}
        self._cache.clear()
        self._cached = 0
        self._arrays = {}

    def __getstate__(self):  # picklable for DataLoader workers: no open handles travel
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, None
        return state

    def __del__(self):
        if getattr(self, "_pid", None) == os.getpid():
            self.close()
