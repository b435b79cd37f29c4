"""Datasets for training: lazy NetCDF access, conditioning, batch sampling."""

from fesr.data.conditioning import encode_coefficient, make_inputs
from fesr.data.dataset import SplitReader, u_scale
from fesr.data.sampling import BatchBuilder, TrainBatches, validation_batches

__all__ = [
    "encode_coefficient",
    "make_inputs",
    "SplitReader",
    "u_scale",
    "BatchBuilder",
    "TrainBatches",
    "validation_batches",
]
