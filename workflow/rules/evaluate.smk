# Evaluation (SPEC 4): predictions on the HR node grids, tidy per-sample metrics per
# (model, split, scale), the FE baselines of table_cost and the complexity of each method.
# Which (model, split, scale) are predicted follows from the tables and figures: see
# src/fesr/evaluate/plan.py (pure Python, the helpers of this file and the report rules).
import functools

from fesr.evaluate import computed_plan
from fesr.evaluate import plan as eval_plan

METRICS = eval_plan.METRICS
EVALUATION = eval_plan.EVALUATION
EVAL = config["evaluation"]
FIGURE_SPLIT = eval_plan.figure_split(config)
EVAL_SCALES = eval_plan.eval_scales(config)
evaluation_targets = functools.partial(eval_plan.evaluation_targets, config)


# One evaluation job per (model, split): loads the checkpoint once, encodes each sample once
# and writes every scale's prediction and metric part (the scales some table or figure needs,
# eval_plan.job_scales) into a temporary staging directory; `evaluated_scale` then links each
# file to its published path, so every consumer depends on the one (model, split, scale) file it
# reads and `snakemake table1` still runs only what Table I needs.
rule predict:
    input:
        # the LR field the model was trained on (u_x1_geometric.nc for a hom model)
        lr=lambda w: train_plan.lr_data_path(w.split, w.model),
        coef=f"{DATA}/{{split}}/coefficient.nc",
        ckpt=f"{MODELS}/{{model}}/checkpoint.pt",
        refs=lambda w: [
            eval_plan.data_path(w.split, s)
            for s in eval_plan.job_scales(config, w.model, w.split)
        ],
    output:
        temp(directory(f"{EVALUATION}/{{model}}/{{split}}")),
    log:
        f"{LOGS}/predict/{{model}}/{{split}}.log",
    benchmark:
        f"{BENCH}/predict/{{model}}/{{split}}.tsv"
    conda:
        ENV_TORCH
    # one thread per job: the stage is 30+ independent jobs, and a 2-thread job waits for two
    # free cores while single-thread training jobs hold one (measured: an idle core in make run)
    threads: 1
    resources:
        gpu=EVAL_GPU,
    params:
        scales=lambda w: eval_plan.words(eval_plan.job_scales(config, w.model, w.split)),
        preds=lambda w: eval_plan.words(
            eval_plan.staged_prediction(w.model, w.split, s)
            for s in eval_plan.job_scales(config, w.model, w.split)
        ),
        parts=lambda w: eval_plan.words(
            eval_plan.staged_metric_part(w.model, w.split, s)
            for s in eval_plan.job_scales(config, w.model, w.split)
        ),
        chunk=EVAL["chunk"],
        device=EVAL.get("device", "auto"),
        seed=config["seed"],
    shell:
        "python -m fesr.evaluate.predict --model {wildcards.model}"
        " --checkpoint {input.ckpt} --lr-data {input.lr} --coefficient {input.coef}"
        " --split {wildcards.split} --alpha {params.scales} --out {params.preds}"
        " --reference {input.refs} --metrics-out {params.parts}"
        " --chunk {params.chunk} --device {params.device} --seed {params.seed}"
        " --threads {threads} > {log} 2>&1"


# Publishes one scale of an evaluation job: a hard link (a copy where links are not supported),
# touched so that it is newer than the staging directory. No Python: it costs no start-up.
rule evaluated_scale:
    input:
        f"{EVALUATION}/{{model}}/{{split}}",
    output:
        pred=f"{PREDICTIONS}/{{model}}/{{split}}/u_x{{alpha}}.nc",
        part=f"{METRICS}/parts/{{model}}/{{split}}/x{{alpha}}.csv",
    log:
        f"{LOGS}/evaluated_scale/{{model}}/{{split}}/x{{alpha}}.log",
    localrule: True
    conda:
        ENV_REPORT
    params:
        pred=lambda w: eval_plan.staged_prediction(w.model, w.split, w.alpha),
        part=lambda w: eval_plan.staged_metric_part(w.model, w.split, w.alpha),
    shell:
        "( (ln -f {params.pred} {output.pred} || cp {params.pred} {output.pred})"
        " && (ln -f {params.part} {output.part} || cp {params.part} {output.part})"
        " && touch {output.pred} {output.part} ) > {log} 2>&1"


rule fe_baselines_part:
    input:
        ref=f"{DATA}/{{split}}/u_x{{alpha}}.nc",
        coef=f"{DATA}/{{split}}/coefficient.nc",
        coarse=lambda w: eval_plan.coarse_data(config, w.split, w.alpha),
        # the LR solves with a geometric / harmonic mean coefficient (homogenization baselines)
        homogenized=lambda w: list(eval_plan.homogenized_data(w.split).values()),
        # LOD, the FE solver stopped early, corrected SR (workflow/rules/computed_baselines.smk)
        computed=lambda w: computed_plan.computed_inputs(config, w.split, w.alpha),
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
    params:
        homogenized=lambda w: eval_plan.words(
            f"{mean}={path}"
            for mean, path in eval_plan.homogenized_data(w.split).items()
        ),
        computed=lambda w: eval_plan.words(
            f"{name}={path}"
            for name, path in computed_plan.computed_rows(
                config, w.split, w.alpha
            ).items()
        ),
    shell:
        "python -m fesr.evaluate.fe_baselines --split {wildcards.split} --scale {wildcards.alpha}"
        " --reference {input.ref} --coarse {input.coarse} --coefficient {input.coef}"
        " --homogenized {params.homogenized} --computed {params.computed}"
        " --u-scale-from {input.norm}"
        " --out {output} > {log} 2>&1"


rule complexity_part:
    input:
        ckpt=f"{MODELS}/{{model}}/checkpoint.pt",
        # the model's own LR field, which its checks (fesr.evaluate.predict) require
        lr=lambda w: train_plan.lr_data_path(FIGURE_SPLIT, w.model),
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
        gpu=EVAL_GPU,
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
