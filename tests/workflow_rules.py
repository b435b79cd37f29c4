"""Loads the Snakemake workflow in a child process and reports its rules as plain data.

A child process, because parsing the Snakefile changes os.environ and sys.path. Used by
test_envs.py (conda environment per rule) and test_slurm.py (rule names for resources).
"""

import json
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_DUMP_RULES = r"""
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

root = Path(sys.argv[1])
extra = [Path(sys.argv[2])] if len(sys.argv) > 2 else []


def resources(rule):
    # declared resources with plain values (Snakemake 9 wraps them in Resource objects)
    out = {}
    for name, res in rule.resources.items():
        value = getattr(res, "raw", res)
        if isinstance(value, (int, str)) and not name.startswith("_"):
            out[name] = value
    return out


with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(),
        config_settings=ConfigSettings(
            configfiles=[root / "workflow/presets/tiny.yaml", *extra]
        ),
        snakefile=root / "Snakefile",
        workdir=root,
    )._workflow
    rules = {}
    for rule in workflow.rules:
        conda = rule.conda_env
        if isinstance(conda, str) and not Path(conda).is_absolute():
            conda = str((Path(str(rule.basedir)) / conda).resolve())
        rules[rule.name] = {
            "conda": None if conda is None else str(conda),
            "shell": rule.shellcmd,
            "runs_code": not rule.norun,
            "is_run": bool(rule.is_run),
            "script": (
                str((Path(str(rule.basedir)) / rule.script).resolve()) if rule.script else None
            ),
            "resources": resources(rule),
            "has_log": bool(rule.log),
            "has_benchmark": rule.benchmark is not None,
        }
print("RULES_JSON=" + json.dumps(rules))
"""


@cache
def load_rules(device: str = "auto") -> dict:
    """name -> {conda (absolute path or None), shell, runs_code, ...} for every rule (cached:
    callers must not modify the result). ``device`` sets ``training.device`` and
    ``evaluation.device``: with ``cuda`` the rules are those of a machine whose jobs use a GPU
    (they declare ``gpu=1``), with ``auto`` those of this machine."""
    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        if device != "auto":
            override = Path(tmp) / "device.yaml"
            override.write_text(
                json.dumps({"training": {"device": device}, "evaluation": {"device": device}})
            )
            extra = [str(override)]
        proc = subprocess.run(
            [sys.executable, "-c", _DUMP_RULES, str(ROOT), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    for line in proc.stdout.splitlines():
        if line.startswith("RULES_JSON="):
            return json.loads(line[len("RULES_JSON=") :])
    raise RuntimeError(f"could not load the workflow's rules:\n{proc.stdout}\n{proc.stderr}")
