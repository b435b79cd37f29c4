"""`snakemake --lint` passes, the .smk files are snakefmt-formatted, the code is ruff-clean."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMK_FILES = ["Snakefile", "workflow/rules", "tests/slurm"]


def _run(*cmd, timeout=300):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_snakemake_lint():
    rc, out = _run(str(BIN / "snakemake"), "--lint", "--configfile", "workflow/presets/tiny.yaml")
    assert rc == 0 and "Congratulations" in out, out[-6000:]


def test_snakefmt():
    rc, out = _run(str(BIN / "snakefmt"), "--check", "--diff", *SMK_FILES)
    assert rc == 0, out[-6000:]


def test_ruff():
    rc, out = _run(str(BIN / "ruff"), "check", "src", "tests")
    assert rc == 0, out[-6000:]
