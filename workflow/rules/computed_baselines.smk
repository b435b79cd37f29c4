# Fields other solvers compute beside the learned SR, each written in prediction layout under
# results/computed/ and scored by fe_baselines_part: PG-LOD, the FE solver stopped early, and SR
# predictions corrected by CG or smoothing. Which ones: src/fesr/evaluate/computed_plan.py.
from fesr.evaluate import computed_plan

COMPUTED = computed_plan.COMPUTED
BASELINES = config["baselines"]
LOD_VARIANTS = computed_plan.lod_variants(config)


# One job per (LOD variant, split): each map's correctors once, then every scale's field and the
# coarse part u_H (u_x1.nc).
rule lod_predict:
    input:
        coef=f"{DATA}/{{split}}/coefficient.nc",
        norm=f"{DATA}/{{split}}/u_x1.nc",
    output:
        directory(f"{COMPUTED}/{{lod}}/{{split}}"),
    log:
        f"{LOGS}/lod_predict/{{lod}}/{{split}}.log",
    benchmark:
        f"{BENCH}/lod_predict/{{lod}}/{{split}}.tsv"
    wildcard_constraints:
        lod="lod_k[0-9]+(_h[0-9]+)?",
    conda:
        ENV_TORCH
    threads: 1
    params:
        k=lambda w: LOD_VARIANTS[w.lod][0],
        fine=lambda w: (
            f"--fine-n {LOD_VARIANTS[w.lod][1]}" if LOD_VARIANTS[w.lod][1] else ""
        ),
        scales=lambda w: eval_plan.words(computed_plan.lod_scales(config, w.split)),
        outs=lambda w, output: eval_plan.words(
            f"{output[0]}/u_x{s}.nc" for s in computed_plan.lod_scales(config, w.split)
        ),
        lr_n=config["lr_n"],
        source=config["physics"]["source"],
    shell:
        "mkdir -p {output} && python -m fesr.fem.lod --coefficient {input.coef}"
        " --split {wildcards.split} --k {params.k} {params.fine} --lr-n {params.lr_n}"
        " --source {params.source} --alpha {params.scales} --out {params.outs}"
        " --coarse-out {output}/u_x1.nc --u-scale-from {input.norm} --model {wildcards.lod}"
        " > {log} 2>&1"


# CG + the configured preconditioner from zero, stopped after each of baselines.fe_iterations.
rule fe_partial:
    input:
        coef=f"{DATA}/{{split}}/coefficient.nc",
        norm=f"{DATA}/{{split}}/u_x1.nc",
    output:
        [
            f"{COMPUTED}/fe_x{{alpha}}_it{k}/{{split}}/u_x{{alpha}}.nc"
            for k in BASELINES["fe_iterations"]
        ],
    log:
        f"{LOGS}/fe_partial/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/fe_partial/{{split}}/x{{alpha}}.tsv"
    conda:
        ENV_FEM_TORCH
    threads: 1
    params:
        its=eval_plan.words(BASELINES["fe_iterations"]),
        lr_n=config["lr_n"],
        source=config["physics"]["source"],
        ksp=config["solver"]["ksp_type"],
        pc=config["solver"]["pc_type"],
    shell:
        "python -m fesr.fem.partial_solve cheap --coefficient {input.coef}"
        " --split {wildcards.split} --alpha {wildcards.alpha} --lr-n {params.lr_n}"
        " --source {params.source} --ksp-type {params.ksp} --pc-type {params.pc}"
        " --u-scale-from {input.norm} --iterations {params.its} --out {output} > {log} 2>&1"


# An SR prediction corrected: k CG iterations started from it, or nu smoothing sweeps.
rule sr_correct:
    input:
        coef=f"{DATA}/{{split}}/coefficient.nc",
        start=f"{PREDICTIONS}/{{model}}/{{split}}/u_x{{alpha}}.nc",
    output:
        [
            f"{COMPUTED}/{{model}}+{v}/{{split}}/u_x{{alpha}}.nc"
            for v in computed_plan.correction_variants(config)
        ],
    log:
        f"{LOGS}/sr_correct/{{model}}/{{split}}/x{{alpha}}.log",
    benchmark:
        f"{BENCH}/sr_correct/{{model}}/{{split}}/x{{alpha}}.tsv"
    conda:
        ENV_FEM_TORCH
    threads: 1
    params:
        cg=eval_plan.words(BASELINES["corrections"]["cg"]),
        smooth=eval_plan.words(BASELINES["corrections"]["smooth"]),
        lr_n=config["lr_n"],
        source=config["physics"]["source"],
        ksp=config["solver"]["ksp_type"],
        pc=config["solver"]["pc_type"],
    shell:
        "python -m fesr.fem.partial_solve correct --coefficient {input.coef}"
        " --start {input.start} --split {wildcards.split} --alpha {wildcards.alpha}"
        " --lr-n {params.lr_n} --source {params.source} --ksp-type {params.ksp}"
        " --pc-type {params.pc} --cg {params.cg} --smooth {params.smooth}"
        " --out {output} > {log} 2>&1"
