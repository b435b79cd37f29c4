"""Reading a split is memory bounded: one sample at a time, never a whole variable."""

import tracemalloc

import numpy as np
import pytest
from synthetic_data import write_split

from fesr.data import BatchBuilder, SplitReader, TrainBatches

SAMPLES, ALPHA = 24, 8


@pytest.fixture(scope="module")
def big_split(tmp_path_factory):
    d = tmp_path_factory.mktemp("lazy")
    write_split(d, "train", SAMPLES, (1, ALPHA), n=32, E=64)
    return d


def test_reading_every_sample_keeps_peak_memory_to_a_few_samples(big_split):
    total = SAMPLES * (32 * ALPHA + 1) ** 2 * 8  # bytes of the whole u_x8 variable (float64)
    reader = SplitReader(big_split, "train", [1, ALPHA], cache_bytes=0)
    builder = BatchBuilder(reader, 1.0, (1, 100), True, sample_q=128)
    stream = TrainBatches(builder, [ALPHA], batch_size=2, seed=0, stop=SAMPLES // 2)
    tracemalloc.start()
    try:
        checksum = 0.0
        for k in range(SAMPLES):
            checksum += float(reader.field(ALPHA, k)[100, 100])
        for batch in stream:  # one epoch of training batches
            checksum += float(batch["target"].sum())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        reader.close()
    assert np.isfinite(checksum)
    assert peak < total / 6, f"peak {peak / 2**20:.1f} MiB vs split {total / 2**20:.1f} MiB"


def test_sample_cache_is_bounded(big_split):
    one = (32 * ALPHA + 1) ** 2 * 4  # float32 sample
    reader = SplitReader(big_split, "train", [1, ALPHA], cache_bytes=int(2.5 * one))
    first = reader.field(ALPHA, 0).copy()
    for k in range(SAMPLES):
        reader.field(ALPHA, k)
        assert reader._cached <= 2.5 * one
    np.testing.assert_array_equal(reader.field(ALPHA, 0), first)  # evicted, re-read identically
    reader.close()


def test_preloaded_split_reads_the_same_samples(big_split):
    lazy = SplitReader(big_split, "train", [1, ALPHA])
    held = SplitReader(big_split, "train", [1, ALPHA])
    assert not held.preload(held.nbytes() - 1)  # over budget: stays lazy
    assert held.preload(held.nbytes())
    for k in (0, 7, SAMPLES - 1):
        np.testing.assert_array_equal(held.field(ALPHA, k), lazy.field(ALPHA, k))
        np.testing.assert_array_equal(held.coefficient(k), lazy.coefficient(k))
        assert held.field(1, k).dtype == np.float32
    held._handles.clear()  # no file access any more: every read comes from memory
    held._var = None
    assert held.field(ALPHA, 3).shape == (32 * ALPHA + 1, 32 * ALPHA + 1)
    lazy.close()
