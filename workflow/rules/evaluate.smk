# Evaluation (SPEC 4): predictions on the HR node grids, tidy per-sample metrics per
# (model, split, scale), the FE baselines of table_cost and the complexity of each method.
# Which (model, split, scale) are predicted follows from the tables and figures: see
# src/fesr/evaluate/plan.py (pure Python, the helpers of this file and report.smk).
import functools

from fesr.evaluate import plan as eval_plan

METRICS = eval_plan.METRICS
EVAL = config["evaluation"]
FIGURE_SPLIT = eval_plan.figure_split(config)
EVAL_SCALES = eval_plan.eval_scales(config)
evaluation_targets = functools.partial(eval_plan.evaluation_targets, config)


rule predict:
    input:
        lr=f"{DATA}/{{split}}/u_x1.nc",
        coef=f"{DATA}/{{split}}/coefficient.nc",
        ckpt=f"{MODELS}/{{model}}/checkpoint.pt",
    output:
        f"{PREDICTIONS}/{{model}}/{{split}}/u_x{{alpha}}.nc",
    log:
        f"{LOGS}/predict/{{model}}/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/predict/{{model}}/{{split}}/x{{alpha}}.tsv"
    conda:
        ENV_TORCH
    threads: 2
    resources:
        gpu=1,
    params:
        chunk=EVAL["chunk"],
        device=EVAL.get("device", "auto"),
        seed=config["seed"],
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
    conda:
        ENV_TORCH
    shell:
        "python -m fesr.evaluate.metrics --prediction {input.pred} --reference {input.ref}"
        " --method {wildcards.model} --split {wildcards.split} --scale {wildcards.alpha}"
        " --out {output} > {log} 2>&1"


rule fe_baselines_part:
    input:
        ref=f"{DATA}/{{split}}/u_x{{alpha}}.nc",
        coarse=lambda w: eval_plan.coarse_data(config, w.split, w.alpha),
        # u_scale (the normalisation constant) of the checkpoints, recorded in every prediction
        norm=lambda w: eval_plan.prediction_path(
            eval_plan.table1_methods(config)[0], w.split, w.alpha
        ),
    output:
        f"{METRICS}/fe_baselines/{{split}}/x{{alpha}}.csv",
    log:
        f"{LOGS}/fe_baselines/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/fe_baselines/{{split}}/x{{alpha}}.tsv"
    conda:
        ENV_TORCH
    shell:
        "python -m fesr.evaluate.cost --split {wildcards.split} --scale {wildcards.alpha}"
        " --reference {input.ref} --coarse {input.coarse} --u-scale-from {input.norm}"
        " --out {output} > {log} 2>&1"


rule complexity_part:
    input:
        ckpt=f"{MODELS}/{{model}}/checkpoint.pt",
        lr=f"{DATA}/{FIGURE_SPLIT}/u_x1.nc",
        coef=f"{DATA}/{FIGURE_SPLIT}/coefficient.nc",
        preds=lambda w: [
            eval_plan.prediction_path(w.model, FIGURE_SPLIT, s) for s in EVAL_SCALES
        ],
    output:
        f"{METRICS}/complexity/{{model}}.csv",
    log:
        f"{LOGS}/complexity/{{model}}.log",
    benchmark:
        f"{BENCH}/complexity/{{model}}.tsv"
    conda:
        ENV_TORCH
    threads: 2
    resources:
        gpu=1,
    params:
        scales=eval_plan.words(EVAL_SCALES),
        chunk=EVAL["chunk"],
        device=EVAL.get("device", "auto"),
    shell:
        "python -m fesr.evaluate.complexity --model {wildcards.model} --checkpoint {input.ckpt}"
        " --lr-data {input.lr} --coefficient {input.coef} --scales {params.scales}"
        " --predictions {input.preds} --chunk {params.chunk} --device {params.device}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule metrics:
    input:
        eval_plan.all_metric_parts(config),
    output:
        f"{METRICS}/metrics.csv",
    log:
        f"{LOGS}/collect/metrics.log",
    benchmark:
        f"{BENCH}/collect/metrics.tsv"
    conda:
        ENV_REPORT
    shell:
        "python -m fesr.evaluate.collect --out {output} {input} > {log} 2>&1"


rule fe_baselines:
    input:
        eval_plan.baseline_parts(config),
    output:
        f"{METRICS}/fe_baselines.csv",
    log:
        f"{LOGS}/collect/fe_baselines.log",
    benchmark:
        f"{BENCH}/collect/fe_baselines.tsv"
    conda:
        ENV_REPORT
    shell:
        "python -m fesr.evaluate.collect --out {output} {input} > {log} 2>&1"


rule complexity:
    input:
        eval_plan.complexity_parts(config),
    output:
        f"{METRICS}/complexity.csv",
    log:
        f"{LOGS}/collect/complexity.log",
    benchmark:
        f"{BENCH}/collect/complexity.tsv"
    conda:
        ENV_REPORT
    shell:
        "python -m fesr.evaluate.collect --out {output} {input} > {log} 2>&1"
