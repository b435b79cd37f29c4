# NH-CSR pipeline: FE datasets -> SR training -> evaluation -> every table and figure.
# Rules are thin: they parse wildcards and call `python -m fesr.<module>` from src/.
import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


# Relative to the Snakefile, not the working directory, so that `-d DIR` works too.
configfile: os.path.join(workflow.basedir, "config.yaml")


# Run the project's code from src/ without an install step, with this interpreter's
# tools first on PATH (a conda env activated by --use-conda still comes first).
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# (.update() rather than os.environ[...] = ...: the linter takes subscripts for required envvars)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
    PATH=os.pathsep.join((os.path.dirname(sys.executable), os.environ.get("PATH", ""))),
)
if hasattr(os, "geteuid") and os.geteuid() == 0:
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

# Every configuration error stops the run here, before any job is planned (`snakemake -n`
# too): the config files read again strictly (Snakemake's loader keeps the last of two equal
# keys and expands aliases), then the schema and the cross-field rules of fesr.validate, all
# errors listed at once.
from fesr.config import yaml_file_errors
from fesr.validate import config_errors

_config_errors = [e for _path in workflow.configfiles for e in yaml_file_errors(_path)]
_config_errors = _config_errors or config_errors(config)
if _config_errors:
    print(f"Invalid configuration ({len(_config_errors)} errors):", file=sys.stderr)
    for _err in _config_errors:
        print(f"  {_err}", file=sys.stderr)
    raise SystemExit(1)
# (again through Snakemake, which also fills in the schema's defaults)
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/computed_baselines.smk"
include: "workflow/rules/timing.smk"
include: "workflow/rules/report_common.smk"
include: "workflow/rules/report_tables.smk"
include: "workflow/rules/report_figures.smk"
include: "workflow/rules/results_page.smk"


rule all:
    default_target: True
    input:
        data_targets(),
        model_targets(),
        report_targets(),
        rules.results_page.output,
