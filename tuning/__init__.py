"""Hyperparameter search over pawtf's public API (KerasTuner); pawtf never imports this package."""
