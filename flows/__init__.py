"""Prefect flows: wiring of tasks, nothing else."""
