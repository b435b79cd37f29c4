# Evaluation (SPEC 4): predictions on the HR node grids, tidy per-sample metrics per
# (model, split, scale), the FE baselines of table_cost and the complexity of each method.
# Which (model, split, scale) are predicted follows from what the tables and figures need.
METRICS = "results/metrics"
EVAL = config["evaluation"]
REPORT = config["report"]
OURS, LIIF, LIT = "nhcsr", "liif", "lit"  # the models Figs. 1, 7 and 8 single out


def eval_scales():
    return [int(s) for s in EVAL["scales"]]


def eval_splits():
    return list(EVAL["splits"])


def figure_split():
    """Ablations and single-split figures use the first evaluation split (random maps)."""
    return eval_splits()[0]


def split_scales(split):
    return [int(s) for s in config["splits"][split]["scales"]]


def pick_scales(wanted, available=None):
    """The wanted scales that are evaluated, else the largest evaluated ones (small presets)."""
    available = sorted(available or eval_scales())
    have = [s for s in wanted if s in available]
    return have or available[-len(wanted) :]


def table1_methods():
    return list(REPORT["table1_methods"])


def ablation_scales():
    return pick_scales([4, 8])


def evaluated():
    """Every (model, split, scale) some table or figure needs, in a stable order."""
    out = {}
    for split in eval_splits():
        for s in eval_scales():
            if s in split_scales(split):
                for m in table1_methods():
                    out[(m, split, s)] = None
    fs = figure_split()
    for key in ("table2_models", "table3_models"):
        for m in REPORT.get(key, []):
            for s in ablation_scales():
                out[(m, fs, s)] = None
    for m in REPORT.get("fig10_models", []):
        out[(m, fs, pick_scales([32])[0])] = None
    for m in (LIIF, OURS, LIT):
        for s in eval_scales():
            out[(m, fs, s)] = None
    return list(out)


def prediction_path(model, split, scale):
    return f"{PREDICTIONS}/{model}/{split}/u_x{scale}.nc"


def metric_part(model, split, scale):
    return f"{METRICS}/parts/{model}/{split}/x{scale}.csv"


def metric_parts(models, splits, scales):
    return [
        metric_part(m, sp, s)
        for sp in splits
        for m in models
        for s in scales
        if s in split_scales(sp)
    ]


def baseline_parts():
    return [
        f"{METRICS}/fe_baselines/{sp}/x{s}.csv"
        for sp in eval_splits()
        for s in eval_scales()
        if s in split_scales(sp)
    ]


def evaluation_targets():
    return [
        f"{METRICS}/metrics.csv",
        f"{METRICS}/fe_baselines.csv",
        f"{METRICS}/complexity.csv",
    ]


rule predict:
    input:
        lr=f"{DATA}/{{split}}/u_x1.nc",
        coef=f"{DATA}/{{split}}/coefficient.nc",
        ckpt=f"{MODELS}/{{model}}/checkpoint.pt",
    output:
        f"{PREDICTIONS}/{{model}}/{{split}}/u_x{{alpha}}.nc",
    params:
        chunk=EVAL["chunk"],
        device=EVAL.get("device", "auto"),
        seed=config["seed"],
    log:
        f"{LOGS}/predict/{{model}}/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/predict/{{model}}/{{split}}/x{{alpha}}.tsv"
    shell:
        "python -m fesr.evaluate.predict --model {wildcards.model} --checkpoint {input.ckpt}"
        " --lr-data {input.lr} --coefficient {input.coef} --alpha {wildcards.alpha}"
        " --chunk {params.chunk} --device {params.device} --seed {params.seed}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule metrics_part:
    input:
        pred=f"{PREDICTIONS}/{{model}}/{{split}}/u_x{{alpha}}.nc",
        ref=f"{DATA}/{{split}}/u_x{{alpha}}.nc",
    output:
        f"{METRICS}/parts/{{model}}/{{split}}/x{{alpha}}.csv",
    log:
        f"{LOGS}/metrics/{{model}}/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/metrics/{{model}}/{{split}}/x{{alpha}}.tsv"
    shell:
        "python -m fesr.evaluate.metrics --prediction {input.pred} --reference {input.ref}"
        " --method {wildcards.model} --split {wildcards.split} --scale {wildcards.alpha}"
        " --out {output} > {log} 2>&1"


rule fe_baselines_part:
    input:
        ref=f"{DATA}/{{split}}/u_x{{alpha}}.nc",
        coarse=lambda w: [
            f"{DATA}/{w.split}/u_x{a}.nc"
            for a in split_scales(w.split)
            if a < int(w.alpha)
        ],
        # u_scale (the normalisation constant) of the checkpoints, recorded in every prediction
        norm=lambda w: prediction_path(table1_methods()[0], w.split, w.alpha),
    output:
        f"{METRICS}/fe_baselines/{{split}}/x{{alpha}}.csv",
    log:
        f"{LOGS}/fe_baselines/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/fe_baselines/{{split}}/x{{alpha}}.tsv"
    shell:
        "python -m fesr.evaluate.cost --split {wildcards.split} --scale {wildcards.alpha}"
        " --reference {input.ref} --coarse {input.coarse} --u-scale-from {input.norm}"
        " --out {output} > {log} 2>&1"


rule complexity_part:
    input:
        ckpt=f"{MODELS}/{{model}}/checkpoint.pt",
        lr=lambda w: f"{DATA}/{figure_split()}/u_x1.nc",
        coef=lambda w: f"{DATA}/{figure_split()}/coefficient.nc",
        preds=lambda w: [
            prediction_path(w.model, figure_split(), s) for s in eval_scales()
        ],
    output:
        f"{METRICS}/complexity/{{model}}.csv",
    params:
        scales=" ".join(str(s) for s in eval_scales()),
        chunk=EVAL["chunk"],
        device=EVAL.get("device", "auto"),
    log:
        f"{LOGS}/complexity/{{model}}.log",
    benchmark:
        f"{BENCH}/complexity/{{model}}.tsv"
    shell:
        "python -m fesr.evaluate.complexity --model {wildcards.model} --checkpoint {input.ckpt}"
        " --lr-data {input.lr} --coefficient {input.coef} --scales {params.scales}"
        " --predictions {input.preds} --chunk {params.chunk} --device {params.device}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule metrics:
    input:
        lambda w: [metric_part(*key) for key in evaluated()],
    output:
        f"{METRICS}/metrics.csv",
    log:
        f"{LOGS}/collect/metrics.log",
    benchmark:
        f"{BENCH}/collect/metrics.tsv"
    shell:
        "python -m fesr.evaluate.collect --out {output} {input} > {log} 2>&1"


rule fe_baselines:
    input:
        lambda w: baseline_parts(),
    output:
        f"{METRICS}/fe_baselines.csv",
    log:
        f"{LOGS}/collect/fe_baselines.log",
    benchmark:
        f"{BENCH}/collect/fe_baselines.tsv"
    shell:
        "python -m fesr.evaluate.collect --out {output} {input} > {log} 2>&1"


rule complexity:
    input:
        lambda w: [f"{METRICS}/complexity/{m}.csv" for m in table1_methods()],
    output:
        f"{METRICS}/complexity.csv",
    log:
        f"{LOGS}/collect/complexity.log",
    benchmark:
        f"{BENCH}/collect/complexity.tsv"
    shell:
        "python -m fesr.evaluate.collect --out {output} {input} > {log} 2>&1"
