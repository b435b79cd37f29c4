# Every table and figure of SPEC 4 as a wildcard-free rule (`snakemake table1` builds that alone
# from the metric parts it needs), flagged for `snakemake --report results/report.html` with the
# captions in workflow/report/. Planning helpers: src/fesr/evaluate/plan.py.
TABLES = eval_plan.TABLES
FIGURES = eval_plan.FIGURES
REPORT = config["report"]
words = eval_plan.words
TABLE1_METHODS = eval_plan.table1_methods(config)
# ... and their seed replicas ({method}-seed{k}, report.table1_seeds), grouped under each method
TABLE1_MODELS = eval_plan.table1_models(config)
EVAL_SPLITS = eval_plan.eval_splits(config)
ABLATION_SCALES = eval_plan.pick_scales(config, "ablation")
FIELD_ARGS = (
    f"--data-dir {DATA} --predictions-dir {PREDICTIONS} "
    f"--modulo-factor {REPORT['modulo_factor']}"
)
# Every table and figure file (and the tidy metric files): the Snakefile's `all` builds them.
report_targets = functools.partial(eval_plan.report_targets, config)


rule table1:
    input:
        metrics=eval_plan.metric_parts(config, TABLE1_MODELS, EVAL_SPLITS, EVAL_SCALES),
        # FE baselines (Q1 from coarse solves, homogenized LR solves) as baseline rows
        fe=eval_plan.baseline_parts(config),
    output:
        csv=report(
            f"{TABLES}/table1.csv", caption="../report/table1.rst", category="Tables"
        ),
        md=f"{TABLES}/table1.md",
        tex=f"{TABLES}/table1.tex",
        # NH-CSR against each other method on the same maps
        paired_csv=f"{TABLES}/table1_paired.csv",
        paired_md=f"{TABLES}/table1_paired.md",
        paired_tex=f"{TABLES}/table1_paired.tex",
    log:
        f"{LOGS}/report/table1.log",
    benchmark:
        f"{BENCH}/report/table1.tsv"
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
        csv=report(
            f"{TABLES}/table2.csv", caption="../report/table2.rst", category="Tables"
        ),
        md=f"{TABLES}/table2.md",
        tex=f"{TABLES}/table2.tex",
        # each variant against the full NH-CSR on the same maps
        paired=multiext(f"{TABLES}/table2_paired", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/report/table2.log",
    benchmark:
        f"{BENCH}/report/table2.tsv"
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
        csv=report(
            f"{TABLES}/table3.csv", caption="../report/table3.rst", category="Tables"
        ),
        md=f"{TABLES}/table3.md",
        tex=f"{TABLES}/table3.tex",
        # each variant against the full NH-CSR on the same maps
        paired=multiext(f"{TABLES}/table3_paired", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/report/table3.log",
    benchmark:
        f"{BENCH}/report/table3.tsv"
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
        csv=report(
            f"{TABLES}/table_complexity.csv",
            caption="../report/table_complexity.rst",
            category="Tables",
        ),
        md=f"{TABLES}/table_complexity.md",
        tex=f"{TABLES}/table_complexity.tex",
    log:
        f"{LOGS}/report/table_complexity.log",
    benchmark:
        f"{BENCH}/report/table_complexity.tsv"
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
    output:
        csv=report(
            f"{TABLES}/table_cost.csv",
            caption="../report/table_cost.rst",
            category="Tables",
        ),
        md=f"{TABLES}/table_cost.md",
        tex=f"{TABLES}/table_cost.tex",
        # per target scale: which approaches are on the Pareto front, at what cost ratio
        answer=f"{TABLES}/table_cost_answer.md",
    log:
        f"{LOGS}/report/table_cost.log",
    benchmark:
        f"{BENCH}/report/table_cost.tsv"
    conda:
        ENV_REPORT
    params:
        methods=words(TABLE1_METHODS),
        scales=words(EVAL_SCALES),
        lr=words(f"{sp}={eval_plan.data_path(sp, 1)}" for sp in EVAL_SPLITS),
    shell:
        "python -m fesr.report.tables table_cost --metrics {input.sr} --baselines {input.fe}"
        " --lr-data {params.lr} --methods {params.methods} --scales {params.scales}"
        f" --out-prefix {TABLES}/table_cost > {{log}} 2>&1"


rule fig_cost:
    input:
        f"{TABLES}/table_cost.csv",
    output:
        png=report(
            f"{FIGURES}/fig_cost.png",
            caption="../report/fig_cost.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/fig_cost.pdf",
    log:
        f"{LOGS}/report/fig_cost.log",
    benchmark:
        f"{BENCH}/report/fig_cost.tsv"
    conda:
        ENV_TORCH
    params:
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_misc fig_cost --table {input} --split {params.split}"
        f" --out-prefix {FIGURES}/fig_cost > {{log}} 2>&1"


rule fig1:
    input:
        [
            eval_plan.prediction_path(m, FIGURE_SPLIT, s)
            for m in (eval_plan.LIIF, eval_plan.OURS)
            for s in EVAL_SCALES
        ],
        [eval_plan.data_path(FIGURE_SPLIT, s) for s in [1] + EVAL_SCALES],
    output:
        png=report(
            f"{FIGURES}/fig1.png", caption="../report/fig1.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig1.pdf",
    log:
        f"{LOGS}/report/fig1.log",
    benchmark:
        f"{BENCH}/report/fig1.tsv"
    conda:
        ENV_REPORT
    params:
        models=words([eval_plan.LIIF, eval_plan.OURS]),
        scales=words(EVAL_SCALES),
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_fields fig1 --models {params.models}"
        " --scales {params.scales} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig1 > {{log}} 2>&1"


rule fig3:
    output:
        png=report(
            f"{FIGURES}/fig3.png", caption="../report/fig3.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig3.pdf",
    log:
        f"{LOGS}/report/fig3.log",
    benchmark:
        f"{BENCH}/report/fig3.tsv"
    conda:
        ENV_TORCH
    params:
        E=config["physics"]["E"],
        contrast=words(config["physics"]["contrast"]),
        p_high=config["physics"]["p_high"],
        seed=config["seed"],
    shell:
        "python -m fesr.report.figures_misc fig3 --E {params.E} --contrast {params.contrast}"
        " --p-high {params.p_high} --seed {params.seed}"
        f" --out-prefix {FIGURES}/fig3 > {{log}} 2>&1"


rule fig4:
    input:
        [
            eval_plan.prediction_path(m, sp, eval_plan.pick_scale(config, "fig4"))
            for m in TABLE1_METHODS
            for sp in EVAL_SPLITS
        ],
        [
            eval_plan.data_path(sp, s)
            for sp in EVAL_SPLITS
            for s in (1, eval_plan.pick_scale(config, "fig4"))
        ],
    output:
        png=report(
            f"{FIGURES}/fig4.png", caption="../report/fig4.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig4.pdf",
    log:
        f"{LOGS}/report/fig4.log",
    benchmark:
        f"{BENCH}/report/fig4.tsv"
    conda:
        ENV_REPORT
    params:
        models=words(TABLE1_METHODS),
        scale=eval_plan.pick_scale(config, "fig4"),
        splits=words(EVAL_SPLITS),
    shell:
        "python -m fesr.report.figures_fields fig4 --models {params.models}"
        " --scales {params.scale} --splits {params.splits}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig4 > {{log}} 2>&1"


rule fig5:
    input:
        [
            eval_plan.prediction_path(m, FIGURE_SPLIT, s)
            for m in TABLE1_METHODS
            for s in eval_plan.pick_scales(config, "fig5")
        ],
        [
            eval_plan.data_path(FIGURE_SPLIT, s)
            for s in eval_plan.pick_scales(config, "fig5")
        ],
    output:
        png=report(
            f"{FIGURES}/fig5.png", caption="../report/fig5.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig5.pdf",
    log:
        f"{LOGS}/report/fig5.log",
    benchmark:
        f"{BENCH}/report/fig5.tsv"
    conda:
        ENV_TORCH
    params:
        models=words(TABLE1_METHODS),
        scales=words(eval_plan.pick_scales(config, "fig5")),
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_spectra fig5 --models {params.models}"
        " --scales {params.scales} --split {params.split}"
        f" --data-dir {DATA} --predictions-dir {PREDICTIONS}"
        f" --out-prefix {FIGURES}/fig5 > {{log}} 2>&1"


rule fig6:
    input:
        [
            eval_plan.prediction_path(
                m, FIGURE_SPLIT, eval_plan.pick_scale(config, "fig6")
            )
            for m in TABLE1_METHODS
        ],
        eval_plan.data_path(FIGURE_SPLIT, eval_plan.pick_scale(config, "fig6")),
    output:
        png=report(
            f"{FIGURES}/fig6.png", caption="../report/fig6.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig6.pdf",
    log:
        f"{LOGS}/report/fig6.log",
    benchmark:
        f"{BENCH}/report/fig6.tsv"
    conda:
        ENV_REPORT
    params:
        models=words(TABLE1_METHODS),
        scale=eval_plan.pick_scale(config, "fig6"),
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_fields fig6 --models {params.models}"
        " --scales {params.scale} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig6 > {{log}} 2>&1"


rule fig7:
    input:
        [
            eval_plan.prediction_path(m, FIGURE_SPLIT, s)
            for m in (eval_plan.LIT, eval_plan.OURS)
            for s in EVAL_SCALES
        ],
        [eval_plan.data_path(FIGURE_SPLIT, s) for s in EVAL_SCALES],
    output:
        png=report(
            f"{FIGURES}/fig7.png", caption="../report/fig7.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig7.pdf",
    log:
        f"{LOGS}/report/fig7.log",
    benchmark:
        f"{BENCH}/report/fig7.tsv"
    conda:
        ENV_REPORT
    params:
        models=words([eval_plan.LIT, eval_plan.OURS]),
        scales=words(EVAL_SCALES),
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_fields fig7 --models {params.models}"
        " --scales {params.scales} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig7 > {{log}} 2>&1"


rule fig8:
    input:
        ckpt=f"{MODELS}/{eval_plan.OURS}/checkpoint.pt",
        lr=eval_plan.data_path(FIGURE_SPLIT, 1),
        coef=f"{DATA}/{FIGURE_SPLIT}/coefficient.nc",
        hr=eval_plan.data_path(FIGURE_SPLIT, eval_plan.pick_scale(config, "fig8")),
    output:
        png=report(
            f"{FIGURES}/fig8.png", caption="../report/fig8.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig8.pdf",
    log:
        f"{LOGS}/report/fig8.log",
    benchmark:
        f"{BENCH}/report/fig8.tsv"
    conda:
        ENV_TORCH
    resources:
        gpu=EVAL_GPU,
    params:
        scale=eval_plan.pick_scale(config, "fig8"),
        split=FIGURE_SPLIT,
        chunk=EVAL["chunk"],
    shell:
        "python -m fesr.report.figures_spectra fig8 --checkpoint {input.ckpt}"
        " --scales {params.scale} --split {params.split} --chunk {params.chunk}"
        f" --data-dir {DATA} --predictions-dir {PREDICTIONS}"
        f" --out-prefix {FIGURES}/fig8 > {{log}} 2>&1"


rule fig9:
    input:
        [f"{MODELS}/{m}/history.csv" for m in REPORT["fig9_models"]],
    output:
        png=report(
            f"{FIGURES}/fig9.png", caption="../report/fig9.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig9.pdf",
    log:
        f"{LOGS}/report/fig9.log",
    benchmark:
        f"{BENCH}/report/fig9.tsv"
    conda:
        ENV_TORCH
    params:
        labels=words(REPORT["fig9_models"]),
    shell:
        "python -m fesr.report.figures_misc fig9 --histories {input}"
        f" --labels {{params.labels}} --out-prefix {FIGURES}/fig9 > {{log}} 2>&1"


rule fig_training:
    input:
        [f"{MODELS}/{m}/history.csv" for m in train_plan.learned_models(config)],
    output:
        png=report(
            f"{FIGURES}/fig_training.png",
            caption="../report/fig_training.rst",
            category="Figures",
        ),
        pdf=f"{FIGURES}/fig_training.pdf",
        # the numbers of the panels, one row per model (fall, last-fifth change, flat or not)
        summary=multiext(f"{FIGURES}/fig_training", ".csv", ".md", ".tex"),
    log:
        f"{LOGS}/report/fig_training.log",
    benchmark:
        f"{BENCH}/report/fig_training.tsv"
    conda:
        ENV_TORCH
    params:
        labels=words(train_plan.learned_models(config)),
    shell:
        "python -m fesr.report.figures_misc fig_training --histories {input}"
        f" --labels {{params.labels}} --out-prefix {FIGURES}/fig_training > {{log}} 2>&1"


rule fig10:
    input:
        [
            eval_plan.prediction_path(
                m, FIGURE_SPLIT, eval_plan.pick_scale(config, "fig10")
            )
            for m in REPORT["fig10_models"]
        ],
        eval_plan.data_path(FIGURE_SPLIT, eval_plan.pick_scale(config, "fig10")),
    output:
        png=report(
            f"{FIGURES}/fig10.png", caption="../report/fig10.rst", category="Figures"
        ),
        pdf=f"{FIGURES}/fig10.pdf",
    log:
        f"{LOGS}/report/fig10.log",
    benchmark:
        f"{BENCH}/report/fig10.tsv"
    conda:
        ENV_REPORT
    params:
        models=words(REPORT["fig10_models"]),
        scale=eval_plan.pick_scale(config, "fig10"),
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_fields fig10 --models {params.models}"
        " --scales {params.scale} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig10 > {{log}} 2>&1"
