"""Developer tools, run from the repository root: `python -m tools.benchmark` (where training and
evaluation time goes) and `python -m tools.benchmark_augment` (what --augment costs)."""
