"""What the Prefect server runs: the `glasses/full` deployment."""
