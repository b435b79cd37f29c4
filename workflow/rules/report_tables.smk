# Every table of SPEC 4 as a wildcard-free rule (`snakemake table1` builds that alone from the
# metric parts it needs), flagged for `snakemake --report results/report.html` with its caption
# from workflow/report/{name}.rst. Shared definitions and helpers: report_common.smk.


rule table1:
    input:
        metrics=eval_plan.metric_parts(config, TABLE1_MODELS, EVAL_SPLITS, EVAL_SCALES),
        # FE baselines (Q1 from coarse solves, homogenized LR solves) as baseline rows
        fe=eval_plan.baseline_parts(config),
    output:
        **table_outputs("table1"),
        # NH-CSR against each other method on the same maps
        paired_csv=f"{TABLES}/table1_paired.csv",
        paired_md=f"{TABLES}/table1_paired.md",
        paired_tex=f"{TABLES}/table1_paired.tex",
    log:
        report_log("table1"),
    benchmark:
        report_benchmark("table1")
    conda:
        ENV_REPORT
    params:
        methods=words(TABLE1_METHODS),
        scales=words(EVAL_SCALES),
        train_scales=words(config["training"]["train_scales"]),
    shell:
        "python -m fesr.report.tables table1 --metrics {input.metrics} --baselines {input.fe}"
        " --methods {params.methods} --scales {params.scales}"
        " --train-scales {params.train_scales}"
        f" --out-prefix {TABLES}/table1 > {{log}} 2>&1"


rule table2:
    input:
        eval_plan.metric_parts(
            config, REPORT["table2_models"], [FIGURE_SPLIT], ABLATION_SCALES
        ),
    output:
        **table_outputs("table2"),
        # each variant against the full NH-CSR on the same maps
        paired=multiext(f"{TABLES}/table2_paired", ".csv", ".md", ".tex"),
    log:
        report_log("table2"),
    benchmark:
        report_benchmark("table2")
    conda:
        ENV_REPORT
    params:
        methods=words(REPORT["table2_models"]),
        scales=words(ABLATION_SCALES),
    shell:
        "python -m fesr.report.tables table2 --metrics {input} --methods {params.methods}"
        f" --scales {{params.scales}} --out-prefix {TABLES}/table2 > {{log}} 2>&1"


rule table3:
    input:
        eval_plan.metric_parts(
            config, REPORT["table3_models"], [FIGURE_SPLIT], ABLATION_SCALES
        ),
    output:
        **table_outputs("table3"),
        # each variant against the full NH-CSR on the same maps
        paired=multiext(f"{TABLES}/table3_paired", ".csv", ".md", ".tex"),
    log:
        report_log("table3"),
    benchmark:
        report_benchmark("table3")
    conda:
        ENV_REPORT
    params:
        methods=words(REPORT["table3_models"]),
        scales=words(ABLATION_SCALES),
    shell:
        "python -m fesr.report.tables table3 --metrics {input} --methods {params.methods}"
        f" --scales {{params.scales}} --out-prefix {TABLES}/table3 > {{log}} 2>&1"


rule table_complexity:
    input:
        parts=eval_plan.complexity_parts(config),
        # paper-size 64x inference, committed by benchmarks/bench_inference.py --csv
        bench=eval_plan.inference_benchmark(workflow.basedir),
    output:
        **table_outputs("table_complexity"),
    log:
        report_log("table_complexity"),
    benchmark:
        report_benchmark("table_complexity")
    conda:
        ENV_REPORT
    params:
        methods=words(TABLE1_METHODS),
        scales=words(EVAL_SCALES),
        bench=lambda w, input: words(f"--inference-benchmark {p}" for p in input.bench),
    shell:
        "python -m fesr.report.tables table_complexity --metrics {input.parts}"
        " --methods {params.methods} --scales {params.scales} {params.bench}"
        f" --out-prefix {TABLES}/table_complexity > {{log}} 2>&1"


rule table_cost:
    input:
        sr=eval_plan.metric_parts(config, TABLE1_MODELS, EVAL_SPLITS, EVAL_SCALES),
        fe=eval_plan.baseline_parts(config),
        lr=[eval_plan.data_path(sp, 1) for sp in EVAL_SPLITS],
        # every approach re-timed alone on one core (workflow/rules/timing.smk)
        timing=rules.cost_timing.output,
    output:
        **table_outputs("table_cost"),
        # per target scale: which approaches are on the Pareto fronts, at what cost ratio
        answer=f"{TABLES}/table_cost_answer.md",
    log:
        report_log("table_cost"),
    benchmark:
        report_benchmark("table_cost")
    conda:
        ENV_REPORT
    params:
        methods=words(TABLE1_METHODS),
        scales=words(EVAL_SCALES),
        lr=words(f"{sp}={eval_plan.data_path(sp, 1)}" for sp in EVAL_SPLITS),
    shell:
        "python -m fesr.report.tables table_cost --metrics {input.sr} --baselines {input.fe}"
        " --lr-data {params.lr} --timing {input.timing}"
        " --methods {params.methods} --scales {params.scales}"
        f" --out-prefix {TABLES}/table_cost > {{log}} 2>&1"


# The physics-aware variants (loss and input-field tokens) against their base models
rule table_physics:
    input:
        metrics=eval_plan.metric_parts(config, TABLE1_MODELS, EVAL_SPLITS, EVAL_SCALES),
        fe=eval_plan.baseline_parts(config),
    output:
        **table_outputs("table_physics"),
    log:
        report_log("table_physics"),
    benchmark:
        report_benchmark("table_physics")
    conda:
        ENV_REPORT
    params:
        methods=words(TABLE1_METHODS),
        scales=words(EVAL_SCALES),
    shell:
        "python -m fesr.report.tables table_physics --metrics {input.metrics}"
        " --baselines {input.fe} --methods {params.methods} --scales {params.scales}"
        f" --out-prefix {TABLES}/table_physics > {{log}} 2>&1"
