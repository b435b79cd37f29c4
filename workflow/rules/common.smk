# Shared helpers for the rule files: paths and the lists of targets derived from the config.
DATA = "results/data"
MODELS = "results/models"
PREDICTIONS = "results/predictions"
LOGS = "results/logs"
BENCH = "results/benchmarks"

wildcard_constraints:
    split="train|val|test_random|test_deterministic",
    alpha="[0-9]+",
    model="[a-z0-9_]+(-[a-z0-9_]+)*",
    shard="[0-9]+",
