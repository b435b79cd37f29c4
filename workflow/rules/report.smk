# Every table and figure of SPEC 4 as a wildcard-free rule (`snakemake table1` builds that alone
# from the metric parts it needs), flagged for `snakemake --report results/report.html`.
TABLES = "results/tables"
FIGURES = "results/figures"
TABLE_NAMES = ["table1", "table2", "table3", "table_complexity", "table_cost"]
FIGURE_NAMES = ["fig1", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9", "fig10"]
FIGURE_NAMES += ["fig_cost"]


def report_targets():
    tables = [f"{TABLES}/{t}.{ext}" for t in TABLE_NAMES for ext in ("csv", "md", "tex")]
    figures = [f"{FIGURES}/{f}.{ext}" for f in FIGURE_NAMES for ext in ("png", "pdf")]
    return evaluation_targets() + tables + figures


def table_outputs(name):
    return {
        "csv": report(
            f"{TABLES}/{name}.csv", caption=f"../report/{name}.rst", category="Tables"
        ),
        "md": f"{TABLES}/{name}.md",
        "tex": f"{TABLES}/{name}.tex",
    }


def figure_outputs(name):
    return {
        "png": report(
            f"{FIGURES}/{name}.png", caption=f"../report/{name}.rst", category="Figures"
        ),
        "pdf": f"{FIGURES}/{name}.pdf",
    }


def words(values):
    return " ".join(str(v) for v in values)


FIELD_ARGS = (
    f"--data-dir {DATA} --predictions-dir {PREDICTIONS} "
    f"--modulo-factor {REPORT['modulo_factor']}"
)


rule table1:
    input:
        metric_parts(table1_methods(), eval_splits(), eval_scales()),
    output:
        **table_outputs("table1"),
    params:
        methods=words(table1_methods()),
        scales=words(eval_scales()),
        train_scales=words(config["training"]["train_scales"]),
    log:
        f"{LOGS}/report/table1.log",
    benchmark:
        f"{BENCH}/report/table1.tsv"
    shell:
        "python -m fesr.report.tables table1 --metrics {input} --methods {params.methods}"
        " --scales {params.scales} --train-scales {params.train_scales}"
        f" --out-prefix {TABLES}/table1 > {{log}} 2>&1"


rule table2:
    input:
        metric_parts(REPORT["table2_models"], [figure_split()], ablation_scales()),
    output:
        **table_outputs("table2"),
    params:
        methods=words(REPORT["table2_models"]),
        scales=words(ablation_scales()),
    log:
        f"{LOGS}/report/table2.log",
    benchmark:
        f"{BENCH}/report/table2.tsv"
    shell:
        "python -m fesr.report.tables table2 --metrics {input} --methods {params.methods}"
        f" --scales {{params.scales}} --out-prefix {TABLES}/table2 > {{log}} 2>&1"


rule table3:
    input:
        metric_parts(REPORT["table3_models"], [figure_split()], ablation_scales()),
    output:
        **table_outputs("table3"),
    params:
        methods=words(REPORT["table3_models"]),
        scales=words(ablation_scales()),
    log:
        f"{LOGS}/report/table3.log",
    benchmark:
        f"{BENCH}/report/table3.tsv"
    shell:
        "python -m fesr.report.tables table3 --metrics {input} --methods {params.methods}"
        f" --scales {{params.scales}} --out-prefix {TABLES}/table3 > {{log}} 2>&1"


rule table_complexity:
    input:
        [f"{METRICS}/complexity/{m}.csv" for m in table1_methods()],
    output:
        **table_outputs("table_complexity"),
    params:
        methods=words(table1_methods()),
        scales=words(eval_scales()),
    log:
        f"{LOGS}/report/table_complexity.log",
    benchmark:
        f"{BENCH}/report/table_complexity.tsv"
    shell:
        "python -m fesr.report.tables table_complexity --metrics {input}"
        " --methods {params.methods} --scales {params.scales}"
        f" --out-prefix {TABLES}/table_complexity > {{log}} 2>&1"


rule table_cost:
    input:
        sr=metric_parts(table1_methods(), eval_splits(), eval_scales()),
        fe=baseline_parts(),
        lr=[f"{DATA}/{sp}/u_x1.nc" for sp in eval_splits()],
    output:
        **table_outputs("table_cost"),
    params:
        methods=words(table1_methods()),
        scales=words(eval_scales()),
        lr=words(f"{sp}={DATA}/{sp}/u_x1.nc" for sp in eval_splits()),
    log:
        f"{LOGS}/report/table_cost.log",
    benchmark:
        f"{BENCH}/report/table_cost.tsv"
    shell:
        "python -m fesr.report.tables table_cost --metrics {input.sr} --baselines {input.fe}"
        " --lr-data {params.lr} --methods {params.methods} --scales {params.scales}"
        f" --out-prefix {TABLES}/table_cost > {{log}} 2>&1"


rule fig_cost:
    input:
        f"{TABLES}/table_cost.csv",
    output:
        **figure_outputs("fig_cost"),
    params:
        split=figure_split(),
    log:
        f"{LOGS}/report/fig_cost.log",
    benchmark:
        f"{BENCH}/report/fig_cost.tsv"
    shell:
        "python -m fesr.report.figures_misc fig_cost --table {input} --split {params.split}"
        f" --out-prefix {FIGURES}/fig_cost > {{log}} 2>&1"


rule fig1:
    input:
        [prediction_path(m, figure_split(), s) for m in (LIIF, OURS) for s in eval_scales()],
        [f"{DATA}/{figure_split()}/u_x{s}.nc" for s in [1] + eval_scales()],
    output:
        **figure_outputs("fig1"),
    params:
        scales=words(eval_scales()),
        split=figure_split(),
    log:
        f"{LOGS}/report/fig1.log",
    benchmark:
        f"{BENCH}/report/fig1.tsv"
    shell:
        f"python -m fesr.report.figures_fields fig1 --models {LIIF} {OURS}"
        " --scales {params.scales} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig1 > {{log}} 2>&1"


rule fig3:
    output:
        **figure_outputs("fig3"),
    params:
        E=config["physics"]["E"],
        contrast=words(config["physics"]["contrast"]),
        p_high=config["physics"]["p_high"],
        seed=config["seed"],
    log:
        f"{LOGS}/report/fig3.log",
    benchmark:
        f"{BENCH}/report/fig3.tsv"
    shell:
        "python -m fesr.report.figures_misc fig3 --E {params.E} --contrast {params.contrast}"
        " --p-high {params.p_high} --seed {params.seed}"
        f" --out-prefix {FIGURES}/fig3 > {{log}} 2>&1"


rule fig4:
    input:
        [
            prediction_path(m, sp, pick_scales([8])[0])
            for m in table1_methods()
            for sp in eval_splits()
        ],
        [
            f"{DATA}/{sp}/u_x{s}.nc"
            for sp in eval_splits()
            for s in (1, pick_scales([8])[0])
        ],
    output:
        **figure_outputs("fig4"),
    params:
        models=words(table1_methods()),
        scale=pick_scales([8])[0],
        splits=words(eval_splits()),
    log:
        f"{LOGS}/report/fig4.log",
    benchmark:
        f"{BENCH}/report/fig4.tsv"
    shell:
        "python -m fesr.report.figures_fields fig4 --models {params.models}"
        " --scales {params.scale} --splits {params.splits}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig4 > {{log}} 2>&1"


rule fig5:
    input:
        [
            prediction_path(m, figure_split(), s)
            for m in table1_methods()
            for s in pick_scales([32, 64])
        ],
        [f"{DATA}/{figure_split()}/u_x{s}.nc" for s in pick_scales([32, 64])],
    output:
        **figure_outputs("fig5"),
    params:
        models=words(table1_methods()),
        scales=words(pick_scales([32, 64])),
        split=figure_split(),
    log:
        f"{LOGS}/report/fig5.log",
    benchmark:
        f"{BENCH}/report/fig5.tsv"
    shell:
        "python -m fesr.report.figures_spectra fig5 --models {params.models}"
        " --scales {params.scales} --split {params.split}"
        f" --data-dir {DATA} --predictions-dir {PREDICTIONS}"
        f" --out-prefix {FIGURES}/fig5 > {{log}} 2>&1"


rule fig6:
    input:
        [prediction_path(m, figure_split(), pick_scales([16])[0]) for m in table1_methods()],
        f"{DATA}/{figure_split()}/u_x{pick_scales([16])[0]}.nc",
    output:
        **figure_outputs("fig6"),
    params:
        models=words(table1_methods()),
        scale=pick_scales([16])[0],
        split=figure_split(),
    log:
        f"{LOGS}/report/fig6.log",
    benchmark:
        f"{BENCH}/report/fig6.tsv"
    shell:
        "python -m fesr.report.figures_fields fig6 --models {params.models}"
        " --scales {params.scale} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig6 > {{log}} 2>&1"


rule fig7:
    input:
        [prediction_path(m, figure_split(), s) for m in (LIT, OURS) for s in eval_scales()],
        [f"{DATA}/{figure_split()}/u_x{s}.nc" for s in eval_scales()],
    output:
        **figure_outputs("fig7"),
    params:
        scales=words(eval_scales()),
        split=figure_split(),
    log:
        f"{LOGS}/report/fig7.log",
    benchmark:
        f"{BENCH}/report/fig7.tsv"
    shell:
        f"python -m fesr.report.figures_fields fig7 --models {LIT} {OURS}"
        " --scales {params.scales} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig7 > {{log}} 2>&1"


rule fig8:
    input:
        ckpt=f"{MODELS}/{OURS}/checkpoint.pt",
        data=[
            f"{DATA}/{figure_split()}/{f}"
            for f in ("u_x1.nc", "coefficient.nc", f"u_x{pick_scales([16])[0]}.nc")
        ],
    output:
        **figure_outputs("fig8"),
    params:
        scale=pick_scales([16])[0],
        split=figure_split(),
        chunk=EVAL["chunk"],
    log:
        f"{LOGS}/report/fig8.log",
    benchmark:
        f"{BENCH}/report/fig8.tsv"
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
    params:
        labels=words(REPORT["fig9_models"]),
    log:
        f"{LOGS}/report/fig9.log",
    benchmark:
        f"{BENCH}/report/fig9.tsv"
    shell:
        "python -m fesr.report.figures_misc fig9 --histories {input}"
        f" --labels {{params.labels}} --out-prefix {FIGURES}/fig9 > {{log}} 2>&1"


rule fig10:
    input:
        [
            prediction_path(m, figure_split(), pick_scales([32])[0])
            for m in REPORT["fig10_models"]
        ],
        f"{DATA}/{figure_split()}/u_x{pick_scales([32])[0]}.nc",
    output:
        **figure_outputs("fig10"),
    params:
        models=words(REPORT["fig10_models"]),
        scale=pick_scales([32])[0],
        split=figure_split(),
    log:
        f"{LOGS}/report/fig10.log",
    benchmark:
        f"{BENCH}/report/fig10.tsv"
    shell:
        "python -m fesr.report.figures_fields fig10 --models {params.models}"
        " --scales {params.scale} --split {params.split}"
        f" {FIELD_ARGS} --out-prefix {FIGURES}/fig10 > {{log}} 2>&1"
