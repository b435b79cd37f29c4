"""Grid positions of SPEC 1 for the data part, without importing torch (``fesr.coords`` does,
and the fem conda environment has no torch). ``tests/test_fem_coefficients.py`` checks that
they equal ``fesr.coords.node_positions`` / ``cell_centre_positions``, the conventions' owner.
"""

import numpy as np


def node_positions(n: int) -> np.ndarray:
    """x_j = j / n, j = 0..n: the vertex-centred nodes of an n x n mesh."""
    return np.arange(n + 1, dtype=np.float64) / n


def cell_centre_positions(E: int) -> np.ndarray:
    """(j + 0.5) / E, j = 0..E-1: the cell-centred positions of an E x E map."""
    return (np.arange(E, dtype=np.float64) + 0.5) / E
