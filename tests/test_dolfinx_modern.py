"""fesr.fem on the DOLFINx that conda-forge and cluster users get, not only on bookworm's 0.5.

A Debian 13 "trixie" chroot, built once per machine by workflow/scripts/build_trixie_chroot.sh
(a missing one is built here, ~15 min, never skipped), holds Debian's DOLFINx 0.9 with petsc4py
3.22, mpi4py 4 and NumPy 2 (the versions of envs/fem.yaml), and a venv with PyPI's DOLFINx 0.11
wheel. In each of the two, with the repository bind-mounted read-only:

* the host suite's FEM tests run unchanged under the chroot's pytest: tests/test_fem_solver.py
  (independent scipy Q1 reference, O(h^2) rate of a manufactured solution, non-convergence) and
  tests/test_fem_dataset.py (the tiny preset's coefficient and solve jobs on 1 and 2 ranks,
  decomposed n = 256, bad input and non-convergence leave no file);
* the generate CLI's coefficients equal the host's bit for bit and its fields equal the host's
  (bookworm, DOLFINx 0.5.2) to solver tolerance, on 1 and 2 ranks, one sample per rank and
  decomposed;
* the versions agree with envs/fem.yaml's pins (major.minor).

Every chroot command runs in its own mount and PID namespaces (unshare): its mounts of /proc,
/sys, /dev and the repository vanish with it, whatever the outcome, and so do its processes.
The chroot sees only what is mounted into it and a cleared environment, so nothing of the host
venv leaks in.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from fesr.config import load_config
from fesr.fem import plan

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "workflow" / "scripts" / "build_trixie_chroot.sh"

pytestmark = [
    pytest.mark.dolfinx_modern,
    pytest.mark.slow,
    pytest.mark.mpi,
    # The first test may wait for the chroot build (~15 min on a fresh machine).
    pytest.mark.timeout(3600),
]

# Where each DOLFINx lives inside the chroot (the directory of its python3 and mpiexec), and the
# preconditioner it solves with: the PyPI wheel's PETSc 3.25 is built without hypre, so 0.11
# runs PETSc's own algebraic multigrid (solver.pc_type: gamg) instead of BoomerAMG.
FLAVOURS = {
    "dolfinx-0.9": ("/usr/bin", "hypre"),
    "dolfinx-0.11": ("/opt/dolfinx-0.11/bin", "gamg"),
}
REPO_IN, WORK_IN = "/fesr/repo", "/fesr/work"

# Runs in a private mount namespace: mount what the chroot needs, then exec into it.
MOUNT_AND_RUN = r"""
root=$1; repo=$2; work=$3; shift 3
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/dev/shm"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind "$repo" "$root/fesr/repo"
mount -o remount,bind,ro "$root/fesr/repo"
mount --bind "$work" "$root/fesr/work"
exec chroot "$root" "$@"
"""


def build_chroot() -> Path:
    """The chroot's path, built first when missing (the builder is idempotent)."""
    if os.geteuid() != 0:
        pytest.fail("the dolfinx_modern tests need root (chroot, mounts)")
    log = Path("/var/cache/fesr/build.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        proc = subprocess.run(["bash", str(BUILDER)], stdout=subprocess.PIPE, stderr=out,
                              text=True, timeout=3000)  # fmt: skip
    if proc.returncode != 0:
        tail = log.read_text()[-4000:]
        pytest.fail(f"building the trixie chroot failed (log {log}):\n{tail}")
    root = Path(proc.stdout.strip().splitlines()[-1])
    assert (root / ".fesr-complete").is_file(), root
    for mount_point in (REPO_IN, WORK_IN):
        (root / mount_point.lstrip("/")).mkdir(parents=True, exist_ok=True)
    return root


class Chroot:
    def __init__(self, root: Path, flavour: str):
        self.root, self.flavour = root, flavour
        self.bin, self.pc_type = FLAVOURS[flavour]

    @property
    def python(self) -> str:
        return f"{self.bin}/python3"

    def run(self, argv, work: Path, cwd: str = WORK_IN, timeout: float = 600, check=True):
        env = ["/usr/bin/env", "-i", "-C", cwd, f"PATH={self.bin}:/usr/bin:/bin",
               "HOME=/root", "LANG=C.UTF-8", f"PYTHONPATH={REPO_IN}/src",
               "PYTHONDONTWRITEBYTECODE=1", "OMP_NUM_THREADS=1",
               "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
               "OMPI_MCA_rmaps_base_oversubscribe=1"]  # fmt: skip
        # A PID namespace too: when the command is killed (timeout), its init dies with it and
        # the kernel ends every process left in there (MPI ranks), and with them the mounts.
        # And a /dev/shm of its own: MPICH names its segment from values that repeat when the
        # PIDs restart at 1 in each namespace, and a segment an aborted run left in the host's
        # /dev/shm made a later 2-rank run fail in MPI_Init ("Message truncated"; once in 625).
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
               "--kill-child", "--", "bash", "-euc",
               MOUNT_AND_RUN, "mount-and-run", str(self.root), str(ROOT), str(work),
               *env, *map(str, argv)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"{argv}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        return proc

    def generate(self, args, work: Path, ranks: int = 1, check=True):
        cmd = [self.python, "-m", "fesr.fem.generate", *args]
        if ranks > 1:
            cmd = [f"{self.bin}/mpiexec", "-n", ranks, *cmd]
        return self.run(cmd, work, check=check)


@pytest.fixture(scope="session")
def chroot_root() -> Path:
    return build_chroot()


@pytest.fixture(scope="session", params=list(FLAVOURS))
def chroot(request, chroot_root) -> Chroot:
    return Chroot(chroot_root, request.param)


def minor(version: str) -> tuple[int, int]:
    major, minor_ = re.match(r"(\d+)\.(\d+)", str(version)).groups()
    return int(major), int(minor_)


def env_pins() -> dict:
    spec = yaml.safe_load((ROOT / "envs" / "fem.yaml").read_text())
    pins = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, str) and "=" in dep:
            name, version = re.split(r"=+", dep.split("#")[0].strip(), maxsplit=1)
            pins[name.strip()] = version.strip().split("=")[0]
    return pins


VERSIONS = """
import json, platform
import fesr.fem.compat  # imports DOLFINx the way fesr.fem does
import dolfinx, mpi4py, numpy, petsc4py
from petsc4py import PETSc
print(json.dumps({"dolfinx": dolfinx.__version__, "petsc4py": petsc4py.__version__,
                  "petsc": ".".join(map(str, PETSc.Sys.getVersion())),
                  "mpi4py": mpi4py.__version__, "numpy": numpy.__version__,
                  "python": platform.python_version()}))
"""


def chroot_versions(chroot: Chroot, tmp_path: Path) -> dict:
    proc = chroot.run([chroot.python, "-c", VERSIONS], tmp_path)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_debian_versions_match_the_fem_env_pins(chroot_root, tmp_path):
    found = chroot_versions(Chroot(chroot_root, "dolfinx-0.9"), tmp_path)
    pins = env_pins()
    wanted = {"dolfinx": pins["fenics-dolfinx"], "petsc": pins["petsc"],
              "petsc4py": pins["petsc4py"], "mpi4py": pins["mpi4py"],
              "numpy": pins["numpy"]}  # fmt: skip
    mismatched = {k: (v, found[k]) for k, v in wanted.items() if minor(v) != minor(found[k])}
    assert not mismatched, f"envs/fem.yaml pin vs trixie chroot (major.minor): {mismatched}"


def test_pypi_flavour_is_dolfinx_0_11(chroot_root, tmp_path):
    found = chroot_versions(Chroot(chroot_root, "dolfinx-0.11"), tmp_path)
    assert minor(found["dolfinx"]) == (0, 11), found
    assert minor(found["python"]) == (3, 13), found


def test_host_fem_tests_pass_inside_the_chroot(chroot_root, tmp_path):
    """The host suite's FEM tests, unchanged, on DOLFINx 0.9 (their subprocesses and mpiexec are
    the chroot's: PY = sys.executable, mpiexec from PATH). They solve with BoomerAMG, which the
    0.11 wheel lacks: its flavour runs the parametrized tests below instead."""
    chroot = Chroot(chroot_root, "dolfinx-0.9")
    files = ["tests/test_fem_solver.py", "tests/test_fem_dataset.py"]
    proc = chroot.run([chroot.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       "-o", "addopts=--strict-markers", *files], tmp_path,
                      cwd=REPO_IN, timeout=900, check=False)  # fmt: skip
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-3000:]
    assert "passed" in summary and "skipped" not in summary, summary


# The independent scipy Q1 reference and the manufactured solution of tests/test_fem_solver.py,
# imported from it inside the chroot, against this DOLFINx with this flavour's preconditioner.
Q1_CHECKS = """
import json, sys
sys.path.insert(0, "/fesr/repo/tests")
import numpy as np
from mpi4py import MPI
from test_fem_solver import l2_error, manufactured_problem, reference_q1
from fesr.fem.coefficients import deterministic_map, random_map
from fesr.fem.solver import Q1Solver
pc = sys.argv[1]
a, f = manufactured_problem()
errors = []
for n in (8, 16, 32, 64):
    solver = Q1Solver(MPI.COMM_SELF, n, source=f, rtol=1e-12, coefficient_family="Q", pc_type=pc)
    errors.append(l2_error(solver.solve(a).u))
reference = {}
for kind in ("random", "channels_cross", "mix_b"):
    if kind == "random":
        A = random_map(64, (1.0, 100.0), 0.5, 0, "test_random", 1)
    else:
        A = deterministic_map(kind, 64, (1.0, 100.0))
    u = Q1Solver(MPI.COMM_SELF, 128, rtol=1e-12, pc_type=pc).solve(A).u
    ref = reference_q1(A, 128)
    reference[kind] = float(np.abs(u - ref).max() / np.abs(ref).max())
print(json.dumps({"errors": errors, "reference": reference}))
"""


def test_q1_equals_scipy_reference_and_converges_at_order_two(chroot, tmp_path):
    proc = chroot.run([chroot.python, "-c", Q1_CHECKS, chroot.pc_type], tmp_path)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for kind, err in result["reference"].items():
        assert err < 1e-8, f"{kind}: max relative difference to scipy {err:.2e}"
    errors = np.array(result["errors"])
    rates = np.log2(errors[:-1] / errors[1:])
    assert np.all(rates > 1.85) and np.all(rates < 2.2), f"errors {errors}, rates {rates}"
    assert errors[-1] < 1e-3


# ---- the generate CLI against the host's bookworm DOLFINx 0.5.2 ---------------------------

SPLIT = "test_deterministic"  # checkerboard and channels_cross (crossing channels: the hard case)
ALPHAS = (1, 2)  # n = 32 one sample per rank, n = 64 decomposed (decompose_min_n below)


def settings(split: str, coefficients: bool = False, pc_type: str = "hypre", **solver) -> dict:
    """The tiny preset's settings of a split, with meshes from n = 64 on decomposed."""
    config = load_config("tiny")
    config["mpi"]["decompose_min_n"] = 64
    if coefficients:
        return plan.coefficient_settings(config, split)
    s = plan.data_settings(config, split)
    s["solver"] = s["solver"] | {"pc_type": pc_type} | solver
    return s


def coefficient_args(split: str, work: str) -> list:
    return ["coefficients", "--split", split, "--output", f"{work}/{split}/coefficient.nc",
            "--settings", json.dumps(settings(split, True))]  # fmt: skip


def solve_args(split: str, alpha: int, work: str, out: str | None = None, **solver) -> list:
    return ["solve", "--split", split, "--alpha", alpha, "--shard", 0,
            "--coefficients", f"{work}/{split}/coefficient.nc",
            "--output", out or f"{work}/{split}/u_x{alpha}.nc",
            "--settings", json.dumps(settings(split, **solver))]  # fmt: skip


@pytest.fixture(scope="session")
def bookworm_fields(tmp_path_factory) -> Path:
    """The same jobs on the host (Debian bookworm's DOLFINx 0.5.2, BoomerAMG), 1 rank."""
    pytest.importorskip("fesr.fem.compat")
    work = tmp_path_factory.mktemp("bookworm")
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    jobs = [coefficient_args(SPLIT, str(work)), coefficient_args("train", str(work))]
    jobs += [solve_args(SPLIT, alpha, str(work)) for alpha in ALPHAS]
    for args in jobs:
        cmd = [sys.executable, "-m", "fesr.fem.generate", *map(str, args)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


@pytest.mark.parametrize("ranks", [1, 2])
def test_fields_equal_bookworm_dolfinx_0_5(chroot, bookworm_fields, tmp_path, ranks):
    for split in (SPLIT, "train"):
        chroot.generate(coefficient_args(split, WORK_IN), tmp_path)
        with (
            xr.open_dataset(tmp_path / split / "coefficient.nc") as new,
            xr.open_dataset(bookworm_fields / split / "coefficient.nc") as old,
        ):  # the maps come from numpy's Generator: NumPy 2 draws what NumPy 1.26 drew
            np.testing.assert_array_equal(new["A"].values, old["A"].values)
    version = chroot.flavour.split("-")[1]
    for alpha in ALPHAS:
        chroot.generate(solve_args(SPLIT, alpha, WORK_IN, pc_type=chroot.pc_type), tmp_path,
                        ranks=ranks)  # fmt: skip
        name = f"{SPLIT}/u_x{alpha}.nc"
        with (
            xr.open_dataset(tmp_path / name) as new,
            xr.open_dataset(bookworm_fields / name) as old,
        ):
            assert new.attrs["mpi_ranks"] == ranks
            assert new.attrs["decomposed"] == int(alpha == 2)  # n >= decompose_min_n
            assert f"dolfinx={version}" in new.attrs["package_versions"]
            assert np.all(new["residual"].values < 1e-9)
            u_new, u_old = new["u"].values, old["u"].values
        assert u_new.shape == u_old.shape == (2, 32 * alpha + 1, 32 * alpha + 1)
        err = np.abs(u_new - u_old).max() / np.abs(u_old).max()
        assert err < 1e-8, f"{name}, {ranks} ranks: max relative difference {err:.2e}"
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


@pytest.mark.parametrize(("ranks", "alpha"), [(1, 2), (2, 1), (2, 2)])  # serial, spread, decomposed
def test_non_convergence_fails_without_output(chroot, tmp_path, ranks, alpha):
    chroot.generate(coefficient_args(SPLIT, WORK_IN), tmp_path)
    args = solve_args(SPLIT, alpha, WORK_IN, f"{WORK_IN}/u.nc", pc_type=chroot.pc_type, max_it=1)
    proc = chroot.generate(args, tmp_path, ranks=ranks, check=False)
    assert proc.returncode != 0
    assert "did not converge" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "u.nc").exists() and not list(tmp_path.rglob("*.tmp"))


def test_bad_input_fails_without_output(chroot, tmp_path):
    chroot.generate(coefficient_args(SPLIT, WORK_IN), tmp_path)
    args = solve_args(SPLIT, 2, WORK_IN, f"{WORK_IN}/u.nc", pc_type=chroot.pc_type)
    args[args.index("--alpha") + 1] = 3
    proc = chroot.generate(args, tmp_path, check=False)
    assert proc.returncode != 0 and "power of two" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "u.nc").exists() and not list(tmp_path.rglob("*.tmp"))


def test_wheel_without_hypre_fails_without_output(chroot_root, tmp_path):
    """The 0.11 wheel's PETSc has no hypre: the default solver stops with PETSc's message."""
    chroot = Chroot(chroot_root, "dolfinx-0.11")
    chroot.generate(coefficient_args(SPLIT, WORK_IN), tmp_path)
    proc = chroot.generate(solve_args(SPLIT, 1, WORK_IN, f"{WORK_IN}/u.nc"), tmp_path, check=False)
    assert proc.returncode != 0 and "hypre" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "u.nc").exists() and not list(tmp_path.rglob("*.tmp"))
