"""tests/conftest.py's empty_store: the copy of a migrated store is the store MLflow creates, and
MLflow opens it without migrating it again."""

import sqlite3

import mlflow.store.db.utils
import pytest
from mlflow import MlflowClient

from tests.conftest import empty_store


def schema(uri: str) -> tuple[list[list[str]], list[tuple]]:
    """Every table's and index's definition, each as its sorted lines (the order of a table's
    constraints varies from one migration run to the next), and the schema revision."""
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        found = [row[0] for row in db.execute("SELECT sql FROM sqlite_master") if row[0]]
        revision = db.execute("SELECT * FROM alembic_version").fetchall()
    return sorted(sorted(line.strip(" ,") for line in sql.splitlines()) for sql in found), revision


def test_a_copied_store_is_the_created_one_and_is_not_migrated_again(tmp_path, monkeypatch):
    created = f"sqlite:///{tmp_path / 'created.db'}"
    MlflowClient(created).search_experiments()  # MLflow creates and migrates it
    copied = empty_store(tmp_path / "copy")
    assert schema(copied) == schema(created)

    def migrate(engine):
        raise AssertionError("the copy was migrated again")

    monkeypatch.setattr(mlflow.store.db.utils, "_initialize_tables", migrate)
    monkeypatch.chdir(tmp_path)
    (default,) = MlflowClient(copied).search_experiments()
    assert default.name == "Default"  # created on first open, as in a store MLflow made
    assert default.artifact_location == str(tmp_path / "mlruns" / "0")  # the opener's root
    with pytest.raises(FileExistsError):
        empty_store(tmp_path / "copy")  # never over a store
