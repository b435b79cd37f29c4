"""Loading one sample of a data or prediction field for a figure (normalised by u_scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fesr.evaluate.io import open_fields, read_sample


class FieldSource:
    """The pipeline's fields: ``{data}/{split}/u_x{a}.nc``, ``{pred}/{model}/{split}/u_x{a}.nc``."""

    def __init__(self, data_dir, predictions_dir):
        self.data_dir = Path(data_dir)
        self.pred_dir = Path(predictions_dir)
        self._u_scale = None

    def data_path(self, split, alpha) -> Path:
        return self.data_dir / split / f"u_x{alpha}.nc"

    def pred_path(self, model, split, alpha) -> Path:
        return self.pred_dir / model / split / f"u_x{alpha}.nc"

    def _read(self, path, k, what, var="u"):
        ds = open_fields(path, (var,), what=what)
        try:
            if what == "prediction file" and self._u_scale is None:
                self._u_scale = float(ds.attrs["u_scale"])
            return read_sample(ds, k, var)
        finally:
            ds.close()

    def prediction(self, model, split, alpha, k=0) -> np.ndarray:
        """Normalised prediction (u / u_scale of its checkpoint)."""
        path = self.pred_path(model, split, alpha)
        ds = open_fields(path, ("u",), what="prediction file")
        try:
            scale = float(ds.attrs["u_scale"])
            self._u_scale = self._u_scale or scale
            return read_sample(ds, k) / scale
        finally:
            ds.close()

    @property
    def u_scale(self) -> float:
        if self._u_scale is None:
            raise RuntimeError("u_scale is known only after a prediction has been read")
        return self._u_scale

    def reference(self, split, alpha, k=0) -> np.ndarray:
        """Normalised HR (or, alpha = 1, LR) FE solution; read a prediction first for u_scale."""
        return self._read(self.data_path(split, alpha), k, "data file") / self.u_scale

    def n_samples(self, split, alpha=1) -> int:
        ds = open_fields(self.data_path(split, alpha), ("u",), what="data file")
        try:
            return int(ds.sizes["sample"])
        finally:
            ds.close()

    def sample_label(self, split, k) -> str:
        """The map name for deterministic splits (coefficient.nc), else 'sample k'."""
        path = self.data_dir / split / "coefficient.nc"
        try:
            ds = open_fields(path, (), what="coefficient file")
        except ValueError:
            return f"sample {k}"
        try:
            for var in ("map_name", "name", "map"):
                if var in ds.variables:
                    return str(np.asarray(ds[var].values)[k])
            return f"sample {k}"
        finally:
            ds.close()
