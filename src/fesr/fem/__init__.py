"""Finite element data of SPEC 1: coefficient maps, the DOLFINx Q1 solver, NetCDF datasets.

Modules: ``coefficients`` (random and named maps), ``solver`` (Q1Solver, projection),
``parallel`` (spreading solves over MPI ranks), ``dataset`` (NetCDF I/O), ``generate`` (CLI),
``plan`` (splits, shards and paths; pure Python), ``compat`` (DOLFINx version differences).
DOLFINx is imported only by ``solver``/``compat``/``parallel``, so the rest loads without it.
"""

from fesr.fem.plan import DETERMINISTIC_MAPS

__all__ = ["DETERMINISTIC_MAPS"]
