"""Shared fixtures. Tests run on CPU with the repository's src/ importable."""

import os
import sys
from pathlib import Path

# netCDF4's bundled HDF5 must load before DOLFINx's system HDF5, or NetCDF reads segfault in
# a process that imported DOLFINx first (see src/fesr/fem/compat.py).
import netCDF4  # noqa: F401
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_config():
    from fesr.config import load_config

    return load_config("tiny")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A working directory holding the tiny preset's whole DAG, run once per session (10-20 min
    on 2 busy cores) for every test that reads its outputs."""
    from tiny_dag import run_tiny_dag

    try:
        return run_tiny_dag(tmp_path_factory.mktemp("dag"))
    except RuntimeError as err:
        pytest.fail(str(err))
