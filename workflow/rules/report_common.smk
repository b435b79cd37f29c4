# What report_tables.smk and report_figures.smk share: the lists the config decides, and the
# log, benchmark and output files of each table and figure (planning helpers in
# src/fesr/evaluate/plan.py).
TABLES = eval_plan.TABLES
FIGURES = eval_plan.FIGURES
REPORT = config["report"]
words = eval_plan.words
TABLE1_METHODS = eval_plan.table1_methods(config)
# ... and their seed replicas ({method}-seed{k}, report.table1_seeds), grouped under each method
TABLE1_MODELS = eval_plan.table1_models(config)
EVAL_SPLITS = eval_plan.eval_splits(config)
ABLATION_SCALES = eval_plan.pick_scales(config, "ablation")
# Every table and figure file (and the tidy metric files): the Snakefile's `all` builds them.
report_targets = functools.partial(eval_plan.report_targets, config)


def report_log(name):
    """The log file of report rule ``name``."""
    return f"{LOGS}/report/{name}.log"


def report_benchmark(name):
    """The benchmark file of report rule ``name``."""
    return f"{BENCH}/report/{name}.tsv"


def report_caption(name):
    """The caption of table or figure ``name`` (fesr.report.captions reads the same file)."""
    return f"../report/{name}.rst"


def table_outputs(name):
    """A table's files: the .csv (in the HTML report, with its caption), the .md and the .tex."""
    return dict(
        csv=report(
            f"{TABLES}/{name}.csv", caption=report_caption(name), category="Tables"
        ),
        md=f"{TABLES}/{name}.md",
        tex=f"{TABLES}/{name}.tex",
    )


def figure_outputs(name):
    """A figure's files: the .png (in the HTML report, with its caption) and the .pdf."""
    return dict(
        png=report(
            f"{FIGURES}/{name}.png", caption=report_caption(name), category="Figures"
        ),
        pdf=f"{FIGURES}/{name}.pdf",
    )
