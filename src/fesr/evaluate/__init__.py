"""Evaluation: predictions on the HR node grids, per-sample metrics, complexity, FE cost baselines."""
