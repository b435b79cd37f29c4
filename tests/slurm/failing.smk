# One rule whose job fails on the cluster: the SLURM test checks that Snakemake reports it as
# failed (from the job state squeue gives) instead of waiting for it forever.


rule fail_on_purpose:
    output:
        "failed_on_purpose.txt",
    log:
        "logs/fail_on_purpose.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "echo 'failing on purpose' > {log}; exit 3"
