"""The SLURM profile on a real SLURM: a single-node cluster (munged, slurmctld, slurmd from
Debian's slurm-wlm) in private network/pid/mount/uts namespaces, so it can reach no address
outside and dies with the namespace (tests/slurm/cluster.sh).

Through profiles/slurm (with the squeue status override, as on a cluster without accounting)
it runs the tiny preset's data target and one training target, then a job that fails.
Checked: the outputs are complete and readable, an MPI rule ran 2 ranks under srun, training
ran in the `gpu` partition with the (fake) GPU allocated, the failing job is reported as failed
rather than waited on, and nothing of the cluster is left running.
"""

import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_rules import load_rules

# About 180 CPU-s in all (mostly Python start-ups of ~40 SLURM jobs): 6 min measured on the
# 2-core machine under a load of 6-8; the generous timeouts are for a machine shared with others.
pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
PYTHON = Path(sys.executable)
SNAKEMAKE = PYTHON.parent / "snakemake"
TOOLS = ["unshare", "ip", "munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol"]
# The training target: a learned method if the registry has it, else the bicubic baseline.
MODEL = "liif"
# A cluster without accounting: job states come from squeue (MinJobAge=300 there).
# --jobs 4: the machine has 2 cores, the fake node claims 16; most of a tiny job is start-up.
COMMON_ARGS = (
    "--workflow-profile profiles/slurm --slurm-status-command squeue"
    " --slurm-init-seconds-before-status-checks 2 --slurm-keep-successful-logs --jobs 4"
).split()
# Own network (only lo), pid (the cluster dies with its PID 1), mount (our /etc/slurm,
# /etc/hosts, /dev/shm) and uts (hostname) namespaces; --kill-child: if unshare dies, so does
# the cluster.
UNSHARE = "unshare --net --pid --fork --mount-proc --uts --kill-child".split()
PIPELINE_TIMEOUT_S = 2700
FAILING_TIMEOUT_S = 600


def _which(tool):
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _require_cluster():
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, SLURM daemons); runs as root in `make test` and CI")
    missing = [t for t in TOOLS if _which(t) is None]
    assert not missing, (
        f"missing {missing}: run `make setup` (workflow/scripts/install_system.sh installs "
        "slurm-wlm and munge)"
    )
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, (
        f"cannot create namespaces here ({probe.stderr.strip()}); a container needs "
        "CAP_SYS_ADMIN (e.g. docker run --privileged) for the SLURM test"
    )


def _copy_workflow(dest: Path):
    """The workflow without results: the cluster run writes only inside the temp dir."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake", "results")
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("workflow", "src", "profiles", "envs"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    (dest / "tests" / "slurm").mkdir(parents=True)
    shutil.copy2(ROOT / "tests" / "slurm" / "failing.smk", dest / "tests" / "slurm")


def _model_target() -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from fesr.models.registry import METHODS

    model = MODEL if MODEL in METHODS else "bicubic"
    return f"results/models/{model}/checkpoint.pt"


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, rules):
    """Runs everything inside one cluster; returns paths and exit codes for the tests below."""
    _require_cluster()
    base = tmp_path_factory.mktemp("slurm")
    work, state = base / "work", base / "cluster"
    work.mkdir()
    _copy_workflow(work)
    targets = [t for t in ("data",) if t in rules] + [_model_target()]
    tiny = ["--configfile", "workflow/presets/tiny.yaml"]
    snakemake = [str(SNAKEMAKE), *COMMON_ARGS]
    # bash reads scripts as it goes: run copies, so editing the repo mid-run cannot break them
    cluster_sh = base / "cluster.sh"
    shutil.copy2(CLUSTER, cluster_sh)
    driver = base / "driver.sh"
    mpi_check = "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.rank, c.size)"
    pipeline = [snakemake[0], *targets, *snakemake[1:], *tiny]
    failing = [*snakemake, "-s", "tests/slurm/failing.smk"]
    b = shlex.quote(str(base))  # the outputs of each step land next to work/
    driver.write_text(
        "set -u\n"
        f"cd {shlex.quote(str(work))}\n"
        f"ip -o addr show > {b}/addresses.txt\n"
        f"srun -n 2 {shlex.join([str(PYTHON), '-c', mpi_check])} > {b}/mpi_check.txt 2>&1\n"
        f"timeout {PIPELINE_TIMEOUT_S} {shlex.join(pipeline)} > {b}/pipeline.log 2>&1\n"
        f"echo $? > {b}/pipeline.rc\n"
        f"timeout {FAILING_TIMEOUT_S} {shlex.join(failing)} > {b}/failing.log 2>&1\n"
        f"echo $? > {b}/failing.rc\n"
    )
    env = dict(os.environ, PATH=f"{PYTHON.parent}:{os.environ['PATH']}:/usr/sbin:/sbin")
    env.setdefault("OMP_NUM_THREADS", "1")
    started, cpu_before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [*UNSHARE, "bash", str(cluster_sh), str(state), "bash", str(driver)],
        env=env,
        capture_output=True,
        text=True,
        timeout=PIPELINE_TIMEOUT_S + FAILING_TIMEOUT_S + 120,
    )
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"SLURM test run: {time.monotonic() - started:.0f} s wall, "
        f"{cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime:.0f} CPU-s"
    )
    run = {"base": base, "work": work, "state": state, "proc": proc, "targets": targets}
    yield run


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else f"<{path.name} missing>"


def _tail(path: Path, n=60) -> str:
    return "\n".join(_read(path).splitlines()[-n:])


def test_cluster_came_up(cluster_run):
    proc = cluster_run["proc"]
    assert proc.returncode == 0, f"cluster.sh: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_namespace_has_only_its_own_addresses(cluster_run):
    """Nothing in the cluster can talk to any address outside the namespace."""
    lines = _read(cluster_run["base"] / "addresses.txt").splitlines()
    assert lines, "no address listing"
    devices = {line.split()[1] for line in lines}
    assert devices == {"lo"}, f"interfaces other than lo in the namespace: {lines}"
    addrs = {line.split()[3] for line in lines}
    assert addrs <= {"127.0.0.1/8", "::1/128", "169.254.0.1/32"}, addrs


def test_mpi_ranks_under_srun(cluster_run):
    out = sorted(_read(cluster_run["base"] / "mpi_check.txt").split("\n"))
    assert [line for line in out if line] == ["0 2", "1 2"], out


def test_pipeline_targets_complete(cluster_run):
    base, work = cluster_run["base"], cluster_run["work"]
    assert "data" in cluster_run["targets"], "the workflow has no `data` target rule"
    assert _read(base / "pipeline.rc").strip() == "0", (
        f"snakemake through profiles/slurm failed:\n{_tail(base / 'pipeline.log')}"
    )
    # The same targets, asked again (locally, dry run): nothing is missing or out of date.
    dry = subprocess.run(
        [
            str(SNAKEMAKE),
            "-n",
            "--configfile",
            "workflow/presets/tiny.yaml",
            "--workflow-profile",
            "none",
            *cluster_run["targets"],
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, (
        dry.stdout + dry.stderr
    )


def test_datasets_readable(cluster_run, tiny_config):
    import numpy as np
    import xarray as xr

    data = cluster_run["work"] / "results" / "data"
    files = sorted(data.glob("*/u_x*.nc"))
    assert files, f"no datasets under {data}"
    for split in tiny_config["splits"]:
        assert (data / split / "coefficient.nc").is_file(), f"{split}/coefficient.nc missing"
    for path in files:
        with xr.open_dataset(path) as ds:
            u = ds["u"].values
            n = u.shape[-1] - 1
            assert u.shape[-2:] == (n + 1, n + 1), f"{path}: u has shape {u.shape}"
            assert np.isfinite(u).all() and np.abs(u).max() > 0, f"{path}: u is not a solution"


def test_training_checkpoint(cluster_run):
    import pandas as pd

    model_dir = cluster_run["work"] / Path(cluster_run["targets"][1]).parent
    checkpoint = model_dir / "checkpoint.pt"
    assert checkpoint.is_file() and checkpoint.stat().st_size > 0, f"{checkpoint} missing"
    history = model_dir / "history.csv"
    if history.exists():
        assert len(pd.read_csv(history)) >= 1, f"{history} is empty"


def _task_records(state: Path):
    """(job, step, rank, ntasks, partition, gpus) per task SLURM launched (cluster.sh's prolog)."""
    return [tuple(line.split()) for line in _read(state / "tasks.log").splitlines() if line]


def _jobs_of_rule(work: Path, rule: str) -> set:
    """SLURM job ids of a rule, from the plugin's per-job logs (.snakemake/slurm_logs/rule_X/)."""
    logs = (work / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log")
    return {p.stem for p in logs if p.stem.isdigit()}


def test_mpi_rule_ran_two_ranks_under_srun(cluster_run, rules):
    mpi_rules = [name for name, r in rules.items() if "mpi" in r["resources"]]
    assert mpi_rules, "no rule declares an `mpi` resource"
    records = _task_records(cluster_run["state"])
    ranks_by_step = {}
    for job, step, rank, ntasks, *_ in records:
        if step != "batch":
            ranks_by_step.setdefault((job, step, ntasks), set()).add(rank)
    mpi_jobs = set().union(*(_jobs_of_rule(cluster_run["work"], r) for r in mpi_rules))
    assert mpi_jobs, f"no SLURM job of {mpi_rules} ran"
    two_rank_steps = [
        key
        for key, ranks in ranks_by_step.items()
        if key[0] in mpi_jobs and key[2] == "2" and ranks == {"0", "1"}
    ]
    assert two_rank_steps, f"no 2-rank srun step in jobs {sorted(mpi_jobs)}: {records}"


def test_mpi_ranks_formed_one_communicator(cluster_run, tiny_config):
    """srun's 2 tasks were one MPI job (PMIx), not 2 singletons: the solver saw 2 ranks and
    decomposed the meshes at or above `mpi.decompose_min_n` (dataset attributes)."""
    import xarray as xr

    ranks = tiny_config["mpi"]["ranks"]
    decomposed = []
    for path in sorted((cluster_run["work"] / "results" / "data").glob("*/u_x*.nc")):
        with xr.open_dataset(path) as ds:
            assert int(ds.attrs.get("mpi_ranks", -1)) == ranks, (path, ds.attrs)
            decomposed.append(int(ds.attrs.get("decomposed", 0)))
    assert any(decomposed), "no dataset was solved domain-decomposed over the ranks"


def test_training_got_the_gpu_partition(cluster_run):
    jobs = _jobs_of_rule(cluster_run["work"], "train")
    assert jobs, "no SLURM job of rule train"
    records = [r for r in _task_records(cluster_run["state"]) if r[0] in jobs]
    assert records and all(r[4] == "gpu" and r[5] != "-" for r in records), records


def test_failing_job_is_reported_failed(cluster_run):
    base = cluster_run["base"]
    rc = _read(base / "failing.rc").strip()
    log = _read(base / "failing.log")
    assert rc != "124", f"snakemake still waited on the failed job after {FAILING_TIMEOUT_S}s"
    assert rc == "1", f"expected snakemake to exit 1, got {rc}:\n{log[-3000:]}"
    assert re.search(r"Error in rule fail_on_purpose", log), log[-3000:]
    assert "FAILED" in log, log[-3000:]


def test_cluster_is_shut_down(cluster_run):
    """No process of the cluster (they all name its state directory) outlives the namespace."""
    state = str(cluster_run["state"])
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state in cmdline:
            leftovers.append(f"{pid}: {cmdline}")
    assert not leftovers, leftovers
