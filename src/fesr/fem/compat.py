"""The one module that hides DOLFINx API differences between Debian's 0.5 and conda-forge's
0.8 / 0.9 / 0.10 / 0.11 (tested: 0.5, 0.9 and PyPI's 0.11, see tests/test_dolfinx_modern.py).
Everything else in ``fesr.fem`` calls DOLFINx only through these helpers or through API that is
the same in all of them (ufl forms, ``Function.interpolate``,
``x.array``/``x.scatter_forward``, ``tabulate_dof_coordinates``, ``dirichletbc``,
``locate_entities_boundary``, ``locate_dofs_topological``, ``compute_midpoints``).
"""

from __future__ import annotations

import os

# isort: off
# netCDF4 first: its wheel bundles an HDF5 that must load before the system HDF5 that Debian's
# DOLFINx/PETSc link; the other order segfaults on the first NetCDF read in the same process.
import netCDF4  # noqa: F401

try:  # PyPI's DOLFINx wheels (dolfinx-solver-*) must load their MPI before the bindings
    import dolfinx_solver  # noqa: F401
except ImportError:
    pass
import dolfinx
import dolfinx.fem
import dolfinx.fem.petsc
import dolfinx.mesh
import numpy as np

# isort: on

VERSION = tuple(int(p) for p in dolfinx.__version__.split(".")[:2])


# PT-SCOTCH 7 partitions with threads, and their timing changes the partition: on 2 ranks of a
# busy machine a 512 x 512 mesh got one of 3 partitions in 10 runs, and with it solutions that
# differ in round-off and CG iteration counts. One thread gives one partition (28 of 28 runs),
# so a decomposed solve is bit for bit reproducible; the partition takes milliseconds either way.
SCOTCH_THREADS = {"SCOTCH_PTHREAD_NUMBER": "1"}


def unit_square_quads(comm, n: int):
    """Uniform n x n quadrilateral mesh of the unit square, partitioned over comm (by
    single-threaded SCOTCH, so the same on every run: ``SCOTCH_THREADS``)."""
    os.environ.update(SCOTCH_THREADS)  # read by SCOTCH when it partitions, not at import
    quad = dolfinx.mesh.CellType.quadrilateral
    return dolfinx.mesh.create_unit_square(comm, n, n, cell_type=quad)


def function_space(mesh, family: str, degree: int):
    """Scalar function space; ``fem.functionspace`` from 0.8, ``fem.FunctionSpace`` before."""
    if hasattr(dolfinx.fem, "functionspace"):
        return dolfinx.fem.functionspace(mesh, (family, degree))
    return dolfinx.fem.FunctionSpace(mesh, (family, degree))


def petsc_vec(function):
    """PETSc vector of a Function's values (``x.petsc_vec`` from 0.8, ``vector`` before)."""
    x = function.x
    return x.petsc_vec if hasattr(x, "petsc_vec") else function.vector


def cell_dofs(space) -> np.ndarray:
    """Dof numbers per local cell as a 2-D array (0.5: AdjacencyList; 0.8+: already an array)."""
    dofs = space.dofmap.list
    if isinstance(dofs, np.ndarray):
        return dofs
    return dofs.array.reshape(-1, space.dofmap.dof_layout.num_dofs)


def create_matrix(form):
    return dolfinx.fem.petsc.create_matrix(form)


def create_vector(form):
    # 0.10 takes the function spaces; older versions the form.
    try:
        return dolfinx.fem.petsc.create_vector(form)
    except (TypeError, AttributeError):  # pragma: no cover - DOLFINx >= 0.10
        return dolfinx.fem.petsc.create_vector(form.function_spaces)


def assemble_matrix_into(A, form, bcs) -> None:
    """Re-assemble a bilinear form into an existing matrix (same sparsity), bcs applied."""
    A.zeroEntries()
    dolfinx.fem.petsc.assemble_matrix(A, form, bcs=bcs)
    A.assemble()


def assemble_vector_into(b, form, a_form, bcs) -> None:
    """Re-assemble a linear form into b with lifting and Dirichlet values set."""
    from petsc4py import PETSc

    with b.localForm() as local:
        local.set(0.0)
    dolfinx.fem.petsc.assemble_vector(b, form)
    dolfinx.fem.petsc.apply_lifting(b, [a_form], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, bcs)
