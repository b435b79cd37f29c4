# Shared helpers for the rule files: paths and the lists of targets derived from the config.
DATA = "results/data"
MODELS = "results/models"
PREDICTIONS = "results/predictions"
LOGS = "results/logs"
BENCH = "results/benchmarks"
# Conda environments (`--use-conda`), one per kind of work. Snakemake resolves these paths
# relative to the .smk file that uses them, i.e. from workflow/rules/.
ENV_FEM = "../../envs/fem.yaml"
ENV_TORCH = "../../envs/torch.yaml"
ENV_REPORT = "../../envs/report.yaml"
ENV_FEM_TORCH = "../../envs/fem_torch.yaml"
# The `gpu` resource of training and inference jobs: 1 each where they will use a GPU (they queue
# for the profile's `resources: gpu=N`), 0 on a CPU-only machine, where one-thread jobs run side
# by side on the cores (fesr.train_plan.gpu_request).
from fesr.train_plan import gpu_request

TRAIN_GPU = gpu_request(config["training"]["device"])
EVAL_GPU = gpu_request(config["evaluation"]["device"])


wildcard_constraints:
    split="train|val|test_random|test_deterministic",
    alpha="[0-9]+",
    model="[a-z0-9_]+(-[a-z0-9_]+)*",
    shard="[0-9]+",
