-- The basic-auth app keeps its users and permissions in a database of its own (both it and the
-- tracking store track their schema with alembic, so they cannot share one).
CREATE DATABASE mlflow_auth OWNER mlflow;
