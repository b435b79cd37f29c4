"""Snakemake script of rule model_config: the model's training config (params.cfg) as JSON."""

from fesr.train_plan import write_json_atomic

write_json_atomic(snakemake.params.cfg, snakemake.output[0], snakemake.log[0])  # noqa: F821
