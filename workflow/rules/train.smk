# Training: one `train` job per model name, e.g. results/models/nhcsr-no_scs/checkpoint.pt.
# The part of the config a model depends on goes to results/models/{model}/train_config.json,
# rewritten only when that part changes (params trigger), so the CLI gets no config on its command
# line and unrelated config edits retrain nothing. Helpers: src/fesr/train_plan.py.
import functools
import os

from fesr import train_plan

# Checkpoints of every model a table or figure needs (the Snakefile's `all` and `models`).
model_targets = functools.partial(train_plan.model_targets, config)


rule model_config:
    output:
        f"{MODELS}/{{model}}/train_config.json",
    log:
        f"{LOGS}/model_config/{{model}}.log",
    benchmark:
        f"{BENCH}/model_config/{{model}}.tsv"
    localrule: True
    conda:
        ENV_TORCH
    params:
        cfg=lambda wildcards: train_plan.train_config(wildcards.model, config),
    script:
        "../scripts/write_train_config.py"


rule train:
    input:
        cfg=f"{MODELS}/{{model}}/train_config.json",
        # the model's LR file: u_x1_geometric.nc for a hom model, u_x1.nc for the others
        data=lambda wildcards: train_plan.train_data_files(config, wildcards.model),
    output:
        checkpoint=f"{MODELS}/{{model}}/checkpoint.pt",
        history=f"{MODELS}/{{model}}/history.csv",
    log:
        f"{LOGS}/train/{{model}}.log",
    benchmark:
        f"{BENCH}/train/{{model}}.tsv"
    conda:
        ENV_TORCH
    # one core per job: 2 cores train 2 models at once. Small convs and MLPs gain little from a
    # second thread, and 2 threads on cores other jobs use stall on each other (bench_train.py)
    threads: 1
    resources:
        gpu=TRAIN_GPU,
        mem_mb=16000,
        runtime=max(10, config["training"]["iterations"] // 100),
    params:
        # results/data and results/models/{model}, derived from the files themselves
        data=lambda wildcards, input: os.path.dirname(os.path.dirname(input.data[0])),
        out=lambda wildcards, output: os.path.dirname(output.checkpoint),
    shell:
        "python -m fesr.train --model {wildcards.model} --config-json {input.cfg}"
        " --data {params.data} --out {params.out} --threads {threads}"
        " > {log} 2>&1"


rule models:
    input:
        model_targets(),
