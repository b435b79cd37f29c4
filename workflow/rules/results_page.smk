# results/RESULTS.md: one Markdown page over every table and figure of the run, with its sizes and
# the measured time of each stage (src/fesr/report/results_page.py). It reads every table and
# figure, so it runs last; `make docs` copies it with the files it links to docs/.
import json
import os
from pathlib import Path

from fesr.report.results_page import run_summary

# the presets given with --configfile (config.yaml is read by the Snakefile itself), relative to
# the repository when they lie in it
RUN_PRESETS = [
    (
        os.path.relpath(p, workflow.basedir)
        if Path(p).resolve().is_relative_to(Path(workflow.basedir).resolve())
        else str(p)
    )
    for p in map(os.path.abspath, workflow.overwrite_configfiles)
    if Path(p).name != "config.yaml"
]


rule results_page:
    input:
        report_targets(),
        [f"{MODELS}/{m}/history.csv" for m in train_plan.learned_models(config)],
    output:
        "results/RESULTS.md",
    log:
        f"{LOGS}/report/results_page.log",
    benchmark:
        f"{BENCH}/report/results_page.tsv"
    conda:
        ENV_REPORT
    params:
        run=json.dumps(run_summary(config)),
        presets=RUN_PRESETS,
    shell:
        "python -m fesr.report.results_page write --results results --run {params.run:q}"
        " --presets {params.presets:q} --out {output} > {log} 2>&1"
