# Data (SPEC 1): per split a coefficient file, then the Q1 solves sharded by (split, alpha,
# shard) so that a crash loses one shard, then the shards merged into u_x{alpha}.nc.
import functools

from fesr.evaluate import plan as eval_plan
from fesr.fem import plan

# Every dataset file of the config (coefficient.nc and u_x{alpha}.nc per split).
data_targets = functools.partial(plan.dataset_files, config)


rule data:
    input:
        data_targets(),


rule data_coefficients:
    output:
        f"{DATA}/{{split}}/coefficient.nc",
    log:
        f"{LOGS}/data/{{split}}/coefficient.log",
    benchmark:
        f"{BENCH}/data/{{split}}/coefficient.tsv"
    conda:
        ENV_FEM
    params:
        settings=lambda wc: plan.as_json(plan.coefficient_settings(config, wc.split)),
    shell:
        "python -m fesr.fem.generate coefficients --split {wildcards.split}"
        " --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule data_solve_shard:
    input:
        coefficients=f"{DATA}/{{split}}/coefficient.nc",
    output:
        f"{DATA}/{{split}}/shards/u_x{{alpha}}_{{shard}}.nc",
    log:
        f"{LOGS}/data/{{split}}/u_x{{alpha}}_{{shard}}.log",
    benchmark:
        f"{BENCH}/data/{{split}}/u_x{{alpha}}_{{shard}}.tsv"
    conda:
        ENV_FEM
    threads: config["mpi"]["ranks"]
    resources:
        mpi="mpiexec --oversubscribe",
        tasks=config["mpi"]["ranks"],
    params:
        settings=lambda wc: plan.as_json(plan.data_settings(config, wc.split)),
    shell:
        "{resources.mpi} -n {resources.tasks} python -m fesr.fem.generate solve"
        " --split {wildcards.split} --alpha {wildcards.alpha} --shard {wildcards.shard}"
        " --settings {params.settings:q} --coefficients {input.coefficients:q}"
        " --output {output:q} > {log:q} 2>&1"


rule data_merge:
    input:
        lambda wc: plan.shard_files(config, wc.split, wc.alpha),
    output:
        f"{DATA}/{{split}}/u_x{{alpha}}.nc",
    log:
        f"{LOGS}/data/{{split}}/u_x{{alpha}}_merge.log",
    benchmark:
        f"{BENCH}/data/{{split}}/u_x{{alpha}}_merge.tsv"
    conda:
        ENV_FEM
    shell:
        "python -m fesr.fem.generate merge --output {output:q} {input:q} > {log:q} 2>&1"


# The LR solve with an effective coefficient per coarse cell (geometric or harmonic mean of the
# covered cells): table_cost's homogenization baselines, on the evaluation splits only (via
# rule fe_baselines_part). 33 x 33 nodes per sample, so one job per split, not sharded.
rule data_homogenized:
    input:
        coefficients=f"{DATA}/{{split}}/coefficient.nc",
    output:
        f"{DATA}/{{split}}/u_x1_{{mean}}.nc",
    log:
        f"{LOGS}/data/{{split}}/u_x1_{{mean}}.log",
    benchmark:
        f"{BENCH}/data/{{split}}/u_x1_{{mean}}.tsv"
    wildcard_constraints:
        mean="|".join(eval_plan.HOMOGENIZED_MEANS),
    conda:
        ENV_FEM
    threads: config["mpi"]["ranks"]
    resources:
        mpi="mpiexec --oversubscribe",
        tasks=config["mpi"]["ranks"],
    params:
        settings=lambda wc: plan.as_json(plan.data_settings(config, wc.split)),
    shell:
        "{resources.mpi} -n {resources.tasks} python -m fesr.fem.generate solve"
        " --split {wildcards.split} --alpha 1 --effective-mean {wildcards.mean}"
        " --settings {params.settings:q} --coefficients {input.coefficients:q}"
        " --output {output:q} > {log:q} 2>&1"
