"""Prefect tasks: thin wrappers that call the `glasses` library and log to MLflow.

MLflow's active run is thread-local and fold tasks run in worker threads, so every task logs
through an `MlflowClient` with the run id it is given, never through the fluent active run.
"""
