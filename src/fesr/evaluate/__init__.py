"""Evaluation: HR-grid predictions, per-sample metrics, complexity, FE cost baselines."""
