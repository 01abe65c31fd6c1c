"""Training orchestration: dataset, fit, evaluate, report, register."""
