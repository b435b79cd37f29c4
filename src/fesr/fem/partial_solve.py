"""The FE solver's cheap end: CG stopped early, or smoothing sweeps, on the HR Q1 system.

The system is the one of the data solve (``fesr.fem.solver.Q1Solver`` on the n x n mesh,
n = lr_n * alpha, coefficient set by ``project_coefficient``, exact when n >= E): Q1 stiffness
K with the Dirichlet rows and columns replaced by the identity, so K is SPD and b is 0 on the
boundary. Nodal arrays follow SPEC 1, ``u[i, j] = u(x_j, y_i)``, placed by ``Q1Solver``'s own
coordinate mapping (``nodal_field`` / ``set_nodal_field``).

Method notes:

* Start: zero, or a given nodal field x0 (an SR prediction). Its boundary values are replaced by
  the known u = 0 first: free, and otherwise the identity rows would spend iterations on them.
* ``cg(iterations=k)``: the configured Krylov method and preconditioner (default CG + hypre
  BoomerAMG; CG on the true residual, as the data solve) stopped after exactly k iterations:
  rtol = atol = 0 and max_it = k, so the only earlier stop is an exactly zero residual. Reaching
  max_it is the intended end (PETSc's KSP_DIVERGED_ITS), not an error; any other failure
  (breakdown, indefinite preconditioner) is a ``SolverError``.
* ``cg(rtol=r)``: the same, stopped at ||b - K x|| <= r ||b|| (PETSc's default test, relative to
  ||b|| from any start); not reaching it within max_it is a ``SolverError``.
* PETSc's divergence test (residual above 1e5 ||b||) is off: a rough start (an SR field) can have
  such a residual while its energy error is small, and CG lowers the energy error every step.
* ``smooth(x0, nu)``: nu symmetric Gauss-Seidel sweeps (one sweep = a forward and a backward
  pass, omega = 1), PETSc's ``MatSOR`` with SOR_LOCAL_SYMMETRIC_SWEEP: the kernel that PCSOR
  applies inside KSPRICHARDSON, called directly. For SPD K its error propagator is a contraction
  in the energy norm sqrt(e^T K e). On several ranks the sweeps are rank-local (block Jacobi
  between ranks, Gauss-Seidel inside), as PCSOR in parallel: the result depends on the partition
  and the contraction is no longer guaranteed.
* Times, per call: ``setup_seconds`` = coefficient + matrix assembly + preconditioner set-up
  (``KSPSetUp``: BoomerAMG builds its hierarchy there); ``iteration_seconds`` = the iterations or
  sweeps alone. Smoothing has no set-up beyond assembly (MatSOR forms the diagonal inside its
  first sweep, counted in the sweeps). Several calls on one coefficient share one assembly and
  one preconditioner set-up, and each reports them in full: what a stand-alone run would pay.
* ``residual``: the true ||b - K x|| / ||b||, recomputed after the iterations.
* Parallel: ``PartialSolver`` works on any communicator (x0 given on the root rank, the field
  returned there, as ``Q1Solver``); the command line runs on one rank.

Command line (one prediction file per variant, in the layout ``fesr.evaluate.predict`` writes)::

    python -m fesr.fem.partial_solve cheap --coefficient results/data/S/coefficient.nc --split S
        --alpha 8 [--lr-n 32 --source 1.0 --ksp-type cg --pc-type hypre --max-it 1000]
        --u-scale-from results/data/S/u_x8.nc [--iterations 1 2 4] [--rtol 1e-1 1e-2]
        --out P/fe_x8_it1/S/u_x8.nc ...
    python -m fesr.fem.partial_solve correct --start results/predictions/MODEL/S/u_x8.nc
        --coefficient ... --split S --alpha 8 [...] [--cg 1 2] [--smooth 10] --out ...

Variants and their ``model`` attribute, in this order (one ``--out`` each, same order):
``fe_x{alpha}_it{k}`` for each --iterations, ``fe_x{alpha}_rtol{r}`` for each --rtol (from zero);
``{model}+cg{k}`` for each --cg, ``{model}+smooth{nu}`` for each --smooth (from the start file,
``{model}`` its ``model`` attribute). An --out path with a component shaped like a variant name
must name its own variant. Each file holds u(sample, y, x) in physical units, ``seconds`` (the
whole cost: set-up + correction, plus the SR part for ``correct``), ``peak_mb``,
``setup_seconds``, ``correction_seconds``, ``iterations``, ``residual`` and, for ``correct``,
``sr_seconds`` (the start file's ``seconds``). ``peak_mb`` is the resident memory of the solver
while the variant runs, above the process before the solver was built (for ``correct`` the
larger of that and the start's own peak: the two run one after the other). ``u_scale`` comes
from --u-scale-from (a dataset's ``u_max`` or a prediction's ``u_scale``) or the start file.
Inputs are checked first (split, scale, mesh, sample counts, names): a mismatch is one line
naming both sides, exit 2, no output.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fesr.cli import UsageError, check_match, run_main
from fesr.fem.solver import Q1Solver, SolverError, mesh_size, solver_name

PROG = "python -m fesr.fem.partial_solve"
SMOOTHER = "symmetric Gauss-Seidel, omega 1 (PETSc MatSOR, SOR_LOCAL_SYMMETRIC_SWEEP)"
OUT_NAME = re.compile(r"u_x(\d+)\.nc$")
NO_DIVERGENCE_TEST = float(np.finfo(np.float64).max)  # as divtol: never trips
VARIANT_NAME = re.compile(r"^(fe_x\d+_(it\d+|rtol[0-9.e+-]+)|.+\+(cg|smooth)\d+)$")


@dataclass
class PartialResult:
    u: np.ndarray | None  # (n+1, n+1) on the root rank, None elsewhere
    iterations: int  # Krylov iterations or smoothing sweeps done
    residual: float  # true ||b - K x|| / ||b||
    setup_seconds: float  # coefficient + assembly + preconditioner set-up
    iteration_seconds: float  # the iterations or sweeps alone

    @property
    def seconds(self) -> float:
        return self.setup_seconds + self.iteration_seconds


def check_count(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def check_rtol(value) -> float:
    if not 0 < float(value) < 1:
        raise ValueError(f"rtol must lie in (0, 1), got {value!r}")
    return float(value)


def with_zero_boundary(u: np.ndarray) -> np.ndarray:
    """A copy of the nodal field with the known boundary value u = 0 set; it must be finite."""
    u = np.array(u, dtype=np.float64)
    if not np.isfinite(u).all():
        raise ValueError(f"start field has {np.count_nonzero(~np.isfinite(u))} non-finite values")
    u[0, :] = u[-1, :] = u[:, 0] = u[:, -1] = 0.0
    return u


class PartialSolver:
    """A few CG iterations or smoothing sweeps on the HR Q1 system of one coefficient at a time.

    ``set_coefficient(A)`` assembles K for an E x E map; then ``cg``, ``smooth`` and
    ``energy_sq`` act on that K, any number of times, sharing the assembly and the preconditioner
    set-up. ``ksp_type``/``pc_type``/``max_it``: the data solve's solver options.
    """

    def __init__(
        self,
        comm,
        n: int,
        source: float = 1.0,
        ksp_type: str = "cg",
        pc_type: str = "hypre",
        max_it: int = 1000,
    ):
        self.fe = Q1Solver(comm, n, source=source, ksp_type=ksp_type, pc_type=pc_type)
        self.comm, self.n = comm, self.fe.n
        self.max_it = check_count("max_it", max_it)
        self.solver_name = self.fe.solver_name
        self._work = self.fe.b.duplicate()
        self._assembly_seconds: float | None = None
        self._pc_seconds: float | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        self._work.destroy()
        self.fe.close()

    def set_coefficient(self, coefficient) -> float:
        """Assemble K for this coefficient; returns the seconds (coefficient + assembly)."""
        from fesr.fem import compat

        t0 = time.perf_counter()
        self.fe.set_coefficient(coefficient)
        compat.assemble_matrix_into(self.fe.A, self.fe.a, self.fe.bcs)
        self.fe.ksp.setOperators(self.fe.A)
        self._assembly_seconds = time.perf_counter() - t0
        self._pc_seconds = None  # the preconditioner of the previous K is stale
        return self._assembly_seconds

    def _assembled(self) -> float:
        if self._assembly_seconds is None:
            raise RuntimeError("no coefficient set: call set_coefficient(A) first")
        return self._assembly_seconds

    def _preconditioner_seconds(self) -> float:
        if self._pc_seconds is None:
            t0 = time.perf_counter()
            self.fe.ksp.setUp()
            self._pc_seconds = time.perf_counter() - t0
        return self._pc_seconds

    def _set_start(self, x0) -> None:
        start = None if self.comm.rank else with_zero_boundary(x0)
        self.fe.set_nodal_field(self.fe.x, start)

    def cg(self, iterations: int | None = None, *, rtol: float | None = None, x0=None):
        """Exactly ``iterations`` Krylov iterations, or iterate to ``rtol`` (give one of them),
        from zero or from the nodal field ``x0`` (given on the root rank)."""
        from petsc4py import PETSc

        if (iterations is None) == (rtol is None):
            raise ValueError("give exactly one of iterations and rtol")
        assembly = self._assembled()
        ksp = self.fe.ksp
        if iterations is not None:
            rtol_, max_it = 0.0, check_count("iterations", iterations)
        else:
            rtol_, max_it = check_rtol(rtol), self.max_it
        ksp.setTolerances(rtol=rtol_, atol=0.0, divtol=NO_DIVERGENCE_TEST, max_it=max_it)
        has_start = self.comm.bcast(x0 is not None, root=0)
        if has_start:
            self._set_start(x0)
        ksp.setInitialGuessNonzero(has_start)
        setup = assembly + self._preconditioner_seconds()
        t0 = time.perf_counter()
        ksp.solve(self.fe.b, self.fe.x)
        seconds = time.perf_counter() - t0
        reason, its = ksp.getConvergedReason(), ksp.getIterationNumber()
        residual = float(self.fe.true_residual())
        stopped_as_asked = (
            iterations is not None and reason == PETSc.KSP.ConvergedReason.DIVERGED_MAX_IT
        )
        if reason < 0 and not stopped_as_asked:
            what = f"{iterations} iterations" if iterations is not None else f"rtol {rtol:g}"
            raise SolverError(
                f"{self.solver_name} ({what}) failed on n={self.n}: reason {reason}, "
                f"{its} iterations, relative residual {residual:.3e}"
            )
        return PartialResult(
            u=self.fe.nodal_field(self.fe.x),
            iterations=int(its),
            residual=residual,
            setup_seconds=setup,
            iteration_seconds=seconds,
        )

    def smooth(self, x0, sweeps: int) -> PartialResult:
        """``sweeps`` symmetric Gauss-Seidel sweeps from the nodal field ``x0`` (root rank)."""
        from petsc4py import PETSc

        sweeps = check_count("sweeps", sweeps)
        assembly = self._assembled()
        self._set_start(x0)
        t0 = time.perf_counter()
        self.fe.A.SOR(
            self.fe.b,
            self.fe.x,
            omega=1.0,
            sortype=PETSc.Mat.SORType.LOCAL_SYMMETRIC_SWEEP,
            its=sweeps,
            lits=1,
        )
        seconds = time.perf_counter() - t0
        return PartialResult(
            u=self.fe.nodal_field(self.fe.x),
            iterations=sweeps,
            residual=float(self.fe.true_residual()),
            setup_seconds=assembly,
            iteration_seconds=seconds,
        )

    def energy_sq(self, u) -> float:
        """v^T K v with the assembled K, v the nodal field u (given on the root rank): the exact
        int A |grad v|^2 of its Q1 interpolant when v = 0 on the boundary and n >= E."""
        self._assembled()
        self.fe.set_nodal_field(self._work, u)
        Kv = self._work.duplicate()
        try:
            self.fe.A.mult(self._work, Kv)
            return float(self._work.dot(Kv))
        finally:
            Kv.destroy()


def _one_shot(comm, n, source, coefficient, **options) -> PartialSolver:
    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_SELF
    solver = PartialSolver(comm, n, source, **options)
    solver.set_coefficient(coefficient)
    return solver


def cg_iterations(
    A, n: int, source, k: int, x0=None, *, ksp_type="cg", pc_type="hypre", comm=None
) -> PartialResult:
    """k iterations of CG + the preconditioner on the n x n mesh with coefficient A, from zero or
    x0. Builds the mesh and forms each call: for many samples use one ``PartialSolver``."""
    with _one_shot(comm, n, source, A, ksp_type=ksp_type, pc_type=pc_type) as solver:
        return solver.cg(k, x0=x0)


def cg_to_rtol(
    A,
    n: int,
    source,
    rtol: float,
    x0=None,
    *,
    ksp_type="cg",
    pc_type="hypre",
    max_it: int = 1000,
    comm=None,
) -> PartialResult:
    """CG + the preconditioner to a (loose) relative residual rtol, from zero or x0."""
    options = {"ksp_type": ksp_type, "pc_type": pc_type, "max_it": max_it}
    with _one_shot(comm, n, source, A, **options) as solver:
        return solver.cg(rtol=rtol, x0=x0)


def smooth(A, n: int, source, x0, sweeps: int, *, comm=None) -> PartialResult:
    """``sweeps`` symmetric Gauss-Seidel sweeps on the n x n system with coefficient A from x0."""
    with _one_shot(comm, n, source, A) as solver:
        return solver.smooth(x0, sweeps)


# -- command line --------------------------------------------------------------------------------
def rtol_label(rtol: float) -> str:
    """1e-1 -> '1e-1', 2.5e-3 -> '2.5e-3': short, exact and free of spaces."""
    return np.format_float_scientific(float(rtol), trim="-", exp_digits=1)


@dataclass(frozen=True)
class Variant:
    name: str  # the ``model`` attribute of its file
    kind: str  # "cg", "cg_rtol" or "smooth"
    value: float  # iterations, rtol or sweeps

    def run(self, solver: PartialSolver, start) -> PartialResult:
        if self.kind == "cg":
            return solver.cg(int(self.value), x0=start)
        if self.kind == "cg_rtol":
            return solver.cg(rtol=self.value, x0=start)
        return solver.smooth(start, int(self.value))


def variants_of(a, start_model: str | None) -> list[Variant]:
    """The variants of the command line, in output order; UsageError for a bad value."""

    def counts(flag, values):
        for v in values:
            if v < 1:
                raise UsageError(f"{flag} {v}: expected an integer >= 1")
        if len(set(values)) != len(values):
            raise UsageError(f"{flag} {' '.join(map(str, values))}: a value is given twice")
        return values

    if a.mode == "cheap":
        rtols = a.rtol
        for r in rtols:
            if not 0 < r < 1:
                raise UsageError(f"--rtol {r:g}: expected a relative residual in (0, 1)")
        if len({rtol_label(r) for r in rtols}) != len(rtols):
            raise UsageError(f"--rtol {' '.join(f'{r:g}' for r in rtols)}: a value is given twice")
        out = [
            Variant(f"fe_x{a.alpha}_it{k}", "cg", k) for k in counts("--iterations", a.iterations)
        ]
        out += [Variant(f"fe_x{a.alpha}_rtol{rtol_label(r)}", "cg_rtol", r) for r in rtols]
    else:
        out = [Variant(f"{start_model}+cg{k}", "cg", k) for k in counts("--cg", a.cg)]
        out += [
            Variant(f"{start_model}+smooth{nu}", "smooth", nu)
            for nu in counts("--smooth", a.smooth)
        ]
    if not out:
        flags = "--iterations or --rtol" if a.mode == "cheap" else "--cg or --smooth"
        raise UsageError(f"{a.mode}: no variant asked for; give {flags}")
    return out


def check_outputs(variants: list[Variant], outs, alpha: int) -> None:
    if len(outs) != len(variants):
        raise UsageError(
            f"--out has {len(outs)} file(s) but {len(variants)} variant(s) are asked for: "
            + ", ".join(v.name for v in variants)
        )
    if len({os.path.abspath(o) for o in outs}) != len(outs):
        raise UsageError("--out names a file twice")
    for variant, out in zip(variants, outs, strict=True):
        named = OUT_NAME.search(Path(out).name)
        if named is None:
            raise UsageError(f"--out {out}: expected a file named u_x{alpha}.nc")
        check_match("scale", ("--alpha", alpha), (f"--out {out}", int(named.group(1))))
        for part in Path(out).parent.parts:
            if VARIANT_NAME.match(part) and part != variant.name:
                raise UsageError(
                    f"--out {out} is in folder '{part}' but is the file of variant "
                    f"'{variant.name}' (outputs go in the order of the variants)"
                )


def _attr(ds, key):
    value = ds.attrs.get(key)
    return value.item() if isinstance(value, np.generic) else value


def check_inputs(a, coef_ds, start_ds) -> tuple[float, str | None]:
    """Every cross-check of the module docstring; returns (u_scale, the start's model)."""
    from fesr.evaluate.fe_baselines import read_u_scale

    if a.alpha < 2 or a.alpha & (a.alpha - 1):
        raise UsageError(f"--alpha {a.alpha}: expected a power of two >= 2")
    if a.lr_n < 1:
        raise UsageError(f"--lr-n {a.lr_n}: expected a positive mesh size")
    if a.max_it < 1:
        raise UsageError(f"--max-it {a.max_it}: expected an integer >= 1")
    n = mesh_size(a.alpha, a.lr_n)
    csrc = f"coefficient file {a.coefficient}"
    if _attr(coef_ds, "split") is not None:
        check_match("split", ("--split", a.split), (csrc, str(_attr(coef_ds, "split"))))
    if start_ds is None:
        norm_src = f"normalisation source file {a.u_scale_from}"
        try:
            u_scale = read_u_scale(a.u_scale_from)
        except ValueError as err:
            raise UsageError(str(err)) from None
        norm = _open(a.u_scale_from, (), "normalisation source file")
        try:
            if _attr(norm, "split") is not None:
                check_match("split", ("--split", a.split), (norm_src, str(_attr(norm, "split"))))
        finally:
            norm.close()
        return u_scale, None
    ssrc = f"start file {a.start}"
    model = _attr(start_ds, "model")
    if model is None:
        raise UsageError(f"{ssrc} lacks attribute 'model': expected a prediction file")
    u_scale = float(_attr(start_ds, "u_scale") or "nan")
    if not np.isfinite(u_scale) or u_scale <= 0:
        raise UsageError(f"{ssrc}: attribute u_scale must be a number > 0")
    if _attr(start_ds, "split") is not None:
        check_match("split", ("--split", a.split), (ssrc, str(_attr(start_ds, "split"))))
    if _attr(start_ds, "alpha") is not None:
        check_match("scale", ("--alpha", a.alpha), (ssrc, int(_attr(start_ds, "alpha"))))
    check_match(
        "HR mesh size", (f"--alpha {a.alpha} --lr-n {a.lr_n}", n), (ssrc, start_ds.sizes["x"] - 1)
    )
    check_match(
        "number of samples",
        (csrc, int(coef_ds.sizes["sample"])),
        (ssrc, int(start_ds.sizes["sample"])),
    )
    return u_scale, str(model)


def _open(path, variables, what):
    from fesr.evaluate.io import open_fields

    return open_fields(path, variables, what=what)


def _resident_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def run(a) -> None:
    from mpi4py import MPI
    from tqdm import tqdm

    from fesr.evaluate.io import atomic_target, read_sample
    from fesr.evaluate.memory import PeakMemory
    from fesr.evaluate.predict import create_output
    from fesr.fem.dataset import git_revision, package_versions

    if MPI.COMM_WORLD.size > 1:
        raise UsageError(f"runs on one MPI rank, got {MPI.COMM_WORLD.size}")
    coef_ds = _open(a.coefficient, ("A",), "coefficient file")
    start_ds = None
    try:
        if a.mode == "correct":
            start_ds = _open(a.start, ("u", "seconds", "peak_mb"), "start file")
        u_scale, start_model = check_inputs(a, coef_ds, start_ds)
        variants = variants_of(a, start_model)
        check_outputs(variants, a.out, a.alpha)
        n = mesh_size(a.alpha, a.lr_n)
        nsamp = int(coef_ds.sizes["sample"])
        samples = np.asarray(coef_ds["sample"].values) if "sample" in coef_ds.coords else None
        samples = np.arange(nsamp) if samples is None else samples
        attrs = {
            "method": "partial_fe",
            "split": str(a.split),
            "alpha": int(a.alpha),
            "n": int(n),
            "lr_n": int(a.lr_n),
            "u_scale": float(u_scale),
            "seed": int(_attr(start_ds, "seed") or 0) if start_ds is not None else 0,
            "source": float(a.source),
            "coefficient": str(a.coefficient),
            "coefficient_mean": "arithmetic",
            "ranks": 1,
            "package_versions": package_versions(),
            "git_revision": git_revision(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if start_ds is not None:
            attrs |= {"start": str(a.start), "start_model": start_model}
        else:
            attrs |= {"start": "zero"}
        tmps = [atomic_target(out) for out in a.out]
        files, done = [], False
        try:
            for variant, tmp in zip(variants, tmps, strict=True):
                files.append(create_output(tmp, n, samples, attrs | _variant_attrs(variant, a)))
                _add_variables(files[-1], start_ds is not None)
            from fesr.fem import compat  # noqa: F401  (loaded first: the baseline holds no libraries)

            baseline = _resident_mb()
            with PartialSolver(
                MPI.COMM_SELF, n, a.source, a.ksp_type, a.pc_type, a.max_it
            ) as solver:
                for k in tqdm(range(nsamp), desc=f"partial FE {a.mode} {a.split} x{a.alpha}"):
                    solver.set_coefficient(read_sample(coef_ds, k, "A"))
                    start = None if start_ds is None else read_sample(start_ds, k)
                    for variant, nc in zip(variants, files, strict=True):
                        held = _resident_mb() - baseline
                        with PeakMemory("cpu") as pm:
                            result = variant.run(solver, start)
                        _write_sample(nc, k, result, held + pm.peak_mb, start_ds)
            done = True
        finally:
            for nc in files:
                nc.close()
            if not done:
                for tmp in tmps:
                    tmp.unlink(missing_ok=True)  # never leave a half-written prediction behind
    finally:
        coef_ds.close()
        if start_ds is not None:
            start_ds.close()
    for tmp, out in zip(tmps, a.out, strict=True):
        os.replace(tmp, out)


def _variant_attrs(variant: Variant, a) -> dict:
    attrs = {"model": variant.name, "correction": variant.kind}
    if variant.kind == "smooth":
        return attrs | {"sweeps": int(variant.value), "smoother": SMOOTHER}
    attrs["solver"] = solver_name(a.ksp_type, a.pc_type)
    if variant.kind == "cg":
        return attrs | {"iterations": int(variant.value)}
    return attrs | {"rtol": float(variant.value), "max_it": int(a.max_it)}


def _add_variables(nc, corrected: bool) -> None:
    nc["seconds"].long_name = (
        "wall time per sample: SR + set-up + correction [s]"
        if corrected
        else "wall time per sample: set-up + iterations [s]"
    )
    nc["peak_mb"].long_name = "peak resident memory of the solver per sample [MiB]"
    docs = [
        ("setup_seconds", "f8", "coefficient + matrix assembly + preconditioner set-up [s]"),
        ("correction_seconds", "f8", "Krylov iterations or smoothing sweeps alone [s]"),
        ("iterations", "i4", "Krylov iterations or smoothing sweeps done"),
        ("residual", "f8", "true relative residual ||b - K u|| / ||b||"),
    ]
    if corrected:
        docs.append(("sr_seconds", "f8", "the SR prediction's own seconds (start file) [s]"))
    for name, dtype, doc in docs:
        v = nc.createVariable(name, dtype, ("sample",))
        v.long_name = doc


def _write_sample(nc, k: int, result: PartialResult, peak_mb: float, start_ds) -> None:
    sr_seconds, sr_peak = 0.0, 0.0
    if start_ds is not None:
        sr_seconds = float(start_ds["seconds"].values[k])
        sr_peak = float(start_ds["peak_mb"].values[k])
        nc["sr_seconds"][k] = sr_seconds
    nc["u"][k] = result.u.astype(np.float32)
    nc["seconds"][k] = sr_seconds + result.seconds
    nc["peak_mb"][k] = max(sr_peak, peak_mb)
    nc["setup_seconds"][k] = result.setup_seconds
    nc["correction_seconds"][k] = result.iteration_seconds
    nc["iterations"][k] = result.iterations
    nc["residual"][k] = result.residual


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    modes = ap.add_subparsers(dest="mode", required=True)
    cheap = modes.add_parser("cheap", help="CG + preconditioner from zero, stopped early")
    correct = modes.add_parser("correct", help="CG or smoothing from an SR prediction")
    for p in (cheap, correct):
        p.add_argument("--coefficient", required=True, help="the split's coefficient.nc")
        p.add_argument("--split", required=True)
        p.add_argument("--alpha", type=int, required=True)
        p.add_argument("--lr-n", type=int, default=32)
        p.add_argument("--source", type=float, default=1.0)
        p.add_argument("--ksp-type", default="cg")
        p.add_argument("--pc-type", default="hypre")
        p.add_argument("--max-it", type=int, default=1000, help="cap of the --rtol variants")
        p.add_argument("--out", nargs="+", required=True, help="one u_x{alpha}.nc per variant")
    cheap.add_argument("--u-scale-from", required=True, help="dataset or prediction file")
    cheap.add_argument("--iterations", type=int, nargs="*", default=[])
    cheap.add_argument("--rtol", type=float, nargs="*", default=[])
    correct.add_argument("--start", required=True, help="the SR prediction file to correct")
    correct.add_argument("--cg", type=int, nargs="*", default=[])
    correct.add_argument("--smooth", type=int, nargs="*", default=[])
    return ap.parse_args(argv)


def main(argv=None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(run_main(PROG, main))
