# table_cost's times on one footing: every approach re-timed alone on one core
# (src/fesr/evaluate/timing.py) on the first evaluation.timing_maps maps of the figure split.
TIMING_SPLIT = eval_plan.figure_split(config)
TIMING_CORRECTIONS = BASELINES["corrections"]
# Table I's base models (a seed replica has its model's architecture and cost) and any model
# whose predictions are corrected: its corrected rows add to its SR time.
TIMING_MODELS = list(
    dict.fromkeys(eval_plan.table1_methods(config) + list(TIMING_CORRECTIONS["models"]))
)


rule cost_timing:
    input:
        coef=f"{DATA}/{TIMING_SPLIT}/coefficient.nc",
        ckpts=[f"{MODELS}/{m}/checkpoint.pt" for m in TIMING_MODELS],
    output:
        f"{METRICS}/timing/{TIMING_SPLIT}.csv",
    log:
        f"{LOGS}/timing/{TIMING_SPLIT}.log",
    benchmark:
        f"{BENCH}/timing/{TIMING_SPLIT}.tsv"
    conda:
        ENV_FEM_TORCH
    # More threads than any workstation has: Snakemake caps them at --cores, so the job holds
    # every core and nothing runs beside it (the profiles/slurm entry asks for an exclusive
    # node instead). It still measures on one core (one thread, one MPI rank), the footing every
    # row of table_cost is compared on.
    threads: 1024
    params:
        maps=config["evaluation"]["timing_maps"],
        split=TIMING_SPLIT,
        # the folder that holds {split}/coefficient.nc
        data=lambda w, input: os.path.dirname(os.path.dirname(input.coef)),
        scales=eval_plan.words(
            s for s in EVAL_SCALES if s in eval_plan.split_scales(config, TIMING_SPLIT)
        ),
        coarse=eval_plan.words(eval_plan.split_scales(config, TIMING_SPLIT)),
        models=eval_plan.words(TIMING_MODELS),
        lr_n=config["lr_n"],
        source=config["physics"]["source"],
        ksp=config["solver"]["ksp_type"],
        pc=config["solver"]["pc_type"],
        rtol=config["solver"]["rtol"],
        max_it=config["solver"]["max_it"],
        lod_layers=eval_plan.words(BASELINES["lod"]["layers"]),
        lod_finer=eval_plan.words(
            f"{f['layers']}:{f['fine_n']}" for f in BASELINES["lod"]["finer"]
        ),
        fe_its=eval_plan.words(BASELINES["fe_iterations"]),
        fix_models=eval_plan.words(TIMING_CORRECTIONS["models"]),
        fix_scales=eval_plan.words(TIMING_CORRECTIONS["scales"]),
        cg=eval_plan.words(TIMING_CORRECTIONS["cg"]),
        smooth=eval_plan.words(TIMING_CORRECTIONS["smooth"]),
        chunk=config["evaluation"]["chunk"],
        seed=config["seed"],
    shell:
        "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
        " python -m fesr.evaluate.timing --split {params.split} --maps {params.maps}"
        " --scales {params.scales} --coarse-scales {params.coarse}"
        " --models {params.models} --checkpoints {input.ckpts} --data-dir {params.data}"
        " --lr-n {params.lr_n} --source {params.source} --ksp-type {params.ksp}"
        " --pc-type {params.pc} --rtol {params.rtol} --max-it {params.max_it}"
        " --lod-layers {params.lod_layers} --lod-finer {params.lod_finer}"
        " --fe-iterations {params.fe_its} --corrections-models {params.fix_models}"
        " --corrections-scales {params.fix_scales} --cg {params.cg} --smooth {params.smooth}"
        " --chunk {params.chunk} --seed {params.seed} --out {output} > {log} 2>&1"
