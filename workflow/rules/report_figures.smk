# Every figure of SPEC 4 as a wildcard-free rule (`snakemake fig4` builds that alone from the
# predictions it needs), flagged for the HTML report with its caption from
# workflow/report/{name}.rst. Shared definitions and helpers: report_common.smk.
FIELD_ARGS = (
    f"--data-dir {DATA} --predictions-dir {PREDICTIONS} "
    f"--modulo-factor {REPORT['modulo_factor']}"
)
# The scales each figure shows: the paper's that are evaluated, else the largest evaluated ones
FIG4_SCALE = eval_plan.pick_scale(config, "fig4")
FIG5_SCALES = eval_plan.pick_scales(config, "fig5")
FIG6_SCALE = eval_plan.pick_scale(config, "fig6")
FIG8_SCALE = eval_plan.pick_scale(config, "fig8")
FIG10_SCALE = eval_plan.pick_scale(config, "fig10")


rule fig_cost:
    input:
        f"{TABLES}/table_cost.csv",
    output:
        **figure_outputs("fig_cost"),
    log:
        report_log("fig_cost"),
    benchmark:
        report_benchmark("fig_cost")
    conda:
        ENV_TORCH
    params:
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_cost fig_cost --table {input} --split {params.split}"
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
        **figure_outputs("fig1"),
    log:
        report_log("fig1"),
    benchmark:
        report_benchmark("fig1")
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
        **figure_outputs("fig3"),
    log:
        report_log("fig3"),
    benchmark:
        report_benchmark("fig3")
    conda:
        ENV_TORCH
    params:
        E=config["physics"]["E"],
        contrast=words(config["physics"]["contrast"]),
        p_high=config["physics"]["p_high"],
        seed=config["seed"],
    shell:
        "python -m fesr.report.figures_coefficients fig3 --E {params.E}"
        " --contrast {params.contrast} --p-high {params.p_high} --seed {params.seed}"
        f" --out-prefix {FIGURES}/fig3 > {{log}} 2>&1"


rule fig4:
    input:
        [
            eval_plan.prediction_path(m, sp, FIG4_SCALE)
            for m in TABLE1_METHODS
            for sp in EVAL_SPLITS
        ],
        [eval_plan.data_path(sp, s) for sp in EVAL_SPLITS for s in (1, FIG4_SCALE)],
    output:
        **figure_outputs("fig4"),
    log:
        report_log("fig4"),
    benchmark:
        report_benchmark("fig4")
    conda:
        ENV_REPORT
    params:
        models=words(TABLE1_METHODS),
        scale=FIG4_SCALE,
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
            for s in FIG5_SCALES
        ],
        [eval_plan.data_path(FIGURE_SPLIT, s) for s in FIG5_SCALES],
    output:
        **figure_outputs("fig5"),
    log:
        report_log("fig5"),
    benchmark:
        report_benchmark("fig5")
    conda:
        ENV_TORCH
    params:
        models=words(TABLE1_METHODS),
        scales=words(FIG5_SCALES),
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_spectra fig5 --models {params.models}"
        " --scales {params.scales} --split {params.split}"
        f" --data-dir {DATA} --predictions-dir {PREDICTIONS}"
        f" --out-prefix {FIGURES}/fig5 > {{log}} 2>&1"


rule fig6:
    input:
        [eval_plan.prediction_path(m, FIGURE_SPLIT, FIG6_SCALE) for m in TABLE1_METHODS],
        eval_plan.data_path(FIGURE_SPLIT, FIG6_SCALE),
    output:
        **figure_outputs("fig6"),
    log:
        report_log("fig6"),
    benchmark:
        report_benchmark("fig6")
    conda:
        ENV_REPORT
    params:
        models=words(TABLE1_METHODS),
        scale=FIG6_SCALE,
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
        **figure_outputs("fig7"),
    log:
        report_log("fig7"),
    benchmark:
        report_benchmark("fig7")
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
        hr=eval_plan.data_path(FIGURE_SPLIT, FIG8_SCALE),
    output:
        **figure_outputs("fig8"),
    log:
        report_log("fig8"),
    benchmark:
        report_benchmark("fig8")
    conda:
        ENV_TORCH
    resources:
        gpu=EVAL_GPU,
    params:
        scale=FIG8_SCALE,
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
        **figure_outputs("fig9"),
    log:
        report_log("fig9"),
    benchmark:
        report_benchmark("fig9")
    conda:
        ENV_TORCH
    params:
        labels=words(REPORT["fig9_models"]),
    shell:
        "python -m fesr.report.figures_training fig9 --histories {input}"
        f" --labels {{params.labels}} --out-prefix {FIGURES}/fig9 > {{log}} 2>&1"


rule fig_training:
    input:
        [f"{MODELS}/{m}/history.csv" for m in train_plan.learned_models(config)],
    output:
        **figure_outputs("fig_training"),
        # the numbers of the panels, one row per model (fall, last-fifth change, flat or not)
        summary=multiext(f"{FIGURES}/fig_training", ".csv", ".md", ".tex"),
    log:
        report_log("fig_training"),
    benchmark:
        report_benchmark("fig_training")
    conda:
        ENV_TORCH
    params:
        labels=words(train_plan.learned_models(config)),
    shell:
        "python -m fesr.report.figures_training fig_training --histories {input}"
        f" --labels {{params.labels}} --out-prefix {FIGURES}/fig_training > {{log}} 2>&1"


rule fig10:
    input:
        [
            eval_plan.prediction_path(m, FIGURE_SPLIT, FIG10_SCALE)
            for m in REPORT["fig10_models"]
        ],
        eval_plan.data_path(FIGURE_SPLIT, FIG10_SCALE),
    output:
        **figure_outputs("fig10"),
    log:
        report_log("fig10"),
    benchmark:
        report_benchmark("fig10")
    conda:
        ENV_REPORT
    params:
        models=words(REPORT["fig10_models"]),
        scale=FIG10_SCALE,
        split=FIGURE_SPLIT,
    shell:
        "python -m fesr.report.figures_fields fig10 --models {params.models}"
        " --scales {params.scale} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig10 > {{log}} 2>&1"
