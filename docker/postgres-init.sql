-- The MLflow server uses POSTGRES_DB (mlflow); the Prefect server gets its own database, since
-- both keep their schema version in an `alembic_version` table.
CREATE DATABASE prefect;
