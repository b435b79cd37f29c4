"""Pure-Python planning of evaluation and report (no torch): imported by workflow/rules/evaluate.smk
and the report rules (report_tables.smk, report_figures.smk).

Which (model, split, scale) are predicted follows from what the tables and figures need:
table1 methods and their seed replicas (``report.table1_seeds``) on every evaluation split and
scale; ablation models (tables II, III, Fig. 10) only on the first evaluation split (random maps)
at the scales their table or figure shows;
LIIF, LIT and NH-CSR at every scale for Figs. 1 and 7. Figures that name a scale of the paper
(16x, 32x, 64x) fall back to the largest evaluated scales in small presets.
"""

from __future__ import annotations

import os

from fesr.model_names import seed_replicas

DATA = "results/data"
MODELS = "results/models"
PREDICTIONS = "results/predictions"
METRICS = "results/metrics"
EVALUATION = "results/evaluation"  # staging of the evaluation jobs (temporary)
INFERENCE_BENCHMARK = "docs/bench_inference.csv"  # in the repository, not under results/
TABLES = "results/tables"
FIGURES = "results/figures"
OURS, LIIF, LIT = "nhcsr", "liif", "lit"  # the models Figs. 1, 7 and 8 single out
TABLE_NAMES = ("table1", "table2", "table3", "table_complexity", "table_cost", "table_physics")
# Tables that also write {name}_paired: NH-CSR against each row on the same maps
PAIRED_TABLE_NAMES = ("table1", "table2", "table3")
FIGURE_NAMES = (
    "fig1",
    "fig3",
    "fig4",
    "fig5",
    "fig6",
    "fig7",
    "fig8",
    "fig9",
    "fig10",
    "fig_cost",
    "fig_training",
)
# paper scale of each single-scale figure (and of the ablation tables)
PAPER_SCALES = {
    "ablation": [4, 8],
    "fig4": [8],
    "fig5": [32, 64],
    "fig6": [16],
    "fig8": [16],
    "fig10": [32],
}


def eval_scales(config) -> list[int]:
    return [int(s) for s in config["evaluation"]["scales"]]


def eval_splits(config) -> list[str]:
    return list(config["evaluation"]["splits"])


def figure_split(config) -> str:
    """Ablations and single-split figures use the first evaluation split (random maps)."""
    return eval_splits(config)[0]


def split_scales(config, split) -> list[int]:
    return [int(s) for s in config["splits"][split]["scales"]]


def pick_scales(config, what: str) -> list[int]:
    """The paper's scales of ``what`` that are evaluated, else the largest evaluated ones."""
    wanted = PAPER_SCALES[what]
    available = sorted(eval_scales(config))
    have = [s for s in wanted if s in available]
    return have or available[-len(wanted) :]


def pick_scale(config, what: str) -> int:
    return pick_scales(config, what)[0]


def table1_methods(config) -> list[str]:
    return list(config["report"]["table1_methods"])


def table1_seeds(config) -> dict[str, int]:
    """Method -> how many seeds Table I trains it with (``report.table1_seeds``; absent: 1)."""
    return {m: int(n) for m, n in config["report"].get("table1_seeds", {}).items()}


def table1_models(config) -> list[str]:
    """Table I's methods, each followed by its seed replicas ``{method}-seed{k}``: the models
    whose metric parts Table I and table_cost read."""
    seeds = table1_seeds(config)
    return [r for m in table1_methods(config) for r in seed_replicas(m, seeds.get(m, 1))]


def report_models(config, key) -> list[str]:
    return list(config["report"].get(key, []))


def evaluated(config) -> list[tuple[str, str, int]]:
    """Every (model, split, scale) some table or figure needs, in a stable order."""
    out: dict = {}
    for split in eval_splits(config):
        for s in eval_scales(config):
            if s in split_scales(config, split):
                for m in table1_models(config):
                    out[(m, split, s)] = None
    fs = figure_split(config)
    for key in ("table2_models", "table3_models"):
        for m in report_models(config, key):
            for s in pick_scales(config, "ablation"):
                out[(m, fs, s)] = None
    for m in report_models(config, "fig10_models"):
        out[(m, fs, pick_scale(config, "fig10"))] = None
    for m in (LIIF, OURS, LIT):
        for s in eval_scales(config):
            out[(m, fs, s)] = None
    return list(out)


def evaluation_jobs(config) -> dict[tuple[str, str], list[int]]:
    """(model, split) -> the scales some table or figure needs, ascending: one evaluation job
    each, which loads the checkpoint once and encodes every sample once for all its scales."""
    jobs: dict = {}
    for model, split, scale in evaluated(config):
        jobs.setdefault((model, split), []).append(scale)
    return {key: sorted(scales) for key, scales in jobs.items()}


def job_scales(config, model, split) -> list[int]:
    """The scales of the evaluation job of (model, split); an error naming them if none."""
    scales = evaluation_jobs(config).get((model, split))
    if not scales:
        raise ValueError(f"no table or figure needs model '{model}' on split '{split}'")
    return scales


def staged_dir(model, split) -> str:
    """Where the evaluation job of (model, split) writes every scale's files (a temporary
    directory: one cheap job per scale then links each file to its published path)."""
    return f"{EVALUATION}/{model}/{split}"


def staged_prediction(model, split, scale) -> str:
    return f"{staged_dir(model, split)}/u_x{scale}.nc"


def staged_metric_part(model, split, scale) -> str:
    return f"{staged_dir(model, split)}/x{scale}.csv"


def prediction_path(model, split, scale) -> str:
    return f"{PREDICTIONS}/{model}/{split}/u_x{scale}.nc"


def data_path(split, scale) -> str:
    return f"{DATA}/{split}/u_x{scale}.nc"


def metric_part(model, split, scale) -> str:
    return f"{METRICS}/parts/{model}/{split}/x{scale}.csv"


def metric_parts(config, models, splits, scales) -> list[str]:
    return [
        metric_part(m, sp, s)
        for sp in splits
        for m in models
        for s in scales
        if s in split_scales(config, sp)
    ]


def all_metric_parts(config) -> list[str]:
    return [metric_part(*key) for key in evaluated(config)]


def baseline_parts(config) -> list[str]:
    return [
        f"{METRICS}/fe_baselines/{sp}/x{s}.csv"
        for sp in eval_splits(config)
        for s in eval_scales(config)
        if s in split_scales(config, sp)
    ]


def coarse_data(config, split, alpha) -> list[str]:
    """The FE solutions coarser than scale alpha that the split holds (for table_cost)."""
    return [data_path(split, a) for a in split_scales(config, split) if a < int(alpha)]


def complexity_parts(config) -> list[str]:
    return [f"{METRICS}/complexity/{m}.csv" for m in table1_methods(config)]


def evaluation_targets(config) -> list[str]:
    return [f"{METRICS}/metrics.csv", f"{METRICS}/fe_baselines.csv", f"{METRICS}/complexity.csv"]


def report_targets(config) -> list[str]:
    """Every tidy metric file, table (csv, md, tex) and figure (png, pdf) of the config."""
    names = [*TABLE_NAMES, *(f"{t}_paired" for t in PAIRED_TABLE_NAMES)]
    tables = [f"{TABLES}/{t}.{ext}" for t in names for ext in ("csv", "md", "tex")]
    figures = [f"{FIGURES}/{f}.{ext}" for f in FIGURE_NAMES for ext in ("png", "pdf")]
    return evaluation_targets(config) + tables + figures


def inference_benchmark(basedir) -> list[str]:
    """The committed paper-size inference numbers (``benchmarks/bench_inference.py --csv``) that
    table_complexity shows, if the repository at ``basedir`` has them."""
    path = os.path.join(str(basedir), INFERENCE_BENCHMARK)
    return [path] if os.path.isfile(path) else []


def words(values) -> str:
    """A list as space-separated words for a shell command line."""
    return " ".join(str(v) for v in values)


# The classical homogenization baselines of table_cost: the LR solve with the geometric or
# harmonic mean of the covered coefficient cells (u_x1.nc is the arithmetic mean).
HOMOGENIZED_MEANS = ("geometric", "harmonic")


def homogenized_approach(mean: str) -> str:
    """The approach name of a homogenized LR solve's rows in the fe_baselines parts."""
    return f"hom_{mean}_interp"


def homogenized_data(split) -> dict[str, str]:
    """Mean -> the LR solve of ``split`` with that effective coefficient (fesr.fem.generate)."""
    return {mean: f"{DATA}/{split}/u_x1_{mean}.nc" for mean in HOMOGENIZED_MEANS}
