"""The tiny preset's whole DAG through the real Snakemake, shared by the tests that read its
outputs (tests/conftest.py's ``tiny_run`` runs it once per session)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(work: Path, *args, timeout=1500) -> subprocess.CompletedProcess:
    # targets and options first: everything after --configfile is read as a config file
    cmd = [str(SNAKEMAKE), *args, "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "2"]
    cmd += ["--configfile", str(ROOT / "config.yaml"), str(ROOT / "workflow/presets/tiny.yaml")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def run_tiny_dag(work: Path) -> Path:
    """Run the whole tiny DAG in ``work``; raise RuntimeError with the tail of the failing log."""
    res = snakemake(work)
    if res.returncode != 0:
        logs = sorted((work / "results" / "logs").rglob("*.log"), key=os.path.getmtime)
        tail = logs[-1].read_text()[-3000:] if logs else ""
        raise RuntimeError(f"tiny DAG failed:\n{res.stderr[-5000:]}\n--- last log ---\n{tail}")
    return work
