"""A store whose disk fills up mid-training: one paragraph without SQL, the truth about what is
left, and advice that works once space is back (`ml-project settle`). The real CLI; the fault
is sqlite's own "database or disk is full" as SQLAlchemy raises it (with the statement, its
parameters and a link), for every write once the gate starts."""

from mlflow import MlflowClient

from tests.conftest import run_cli
from tests.integration.test_faults_cli import (
    BINARY,
    MODEL,
    clean_failure,
    fresh_store,
    train_with_fault,
)

STORE_FILLS_UP = """
import sqlite3
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from ml_project import promotion

original = promotion.gate_version

def refuse_writes(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE"):
        full = sqlite3.OperationalError("database or disk is full")  # as SQLAlchemy reports it:
        raise exc.OperationalError(statement, parameters, full)  # with the SQL and a link

def gate_version(*args, **kwargs):  # the version is registered: now the disk is full
    event.listen(Engine, "before_cursor_execute", refuse_writes)
    return original(*args, **kwargs)

promotion.gate_version = gate_version
"""


def test_a_full_store_mid_training_says_so_without_sql_and_settle_clears_it(
    synthetic_project, tmp_path
):
    uri = fresh_store(tmp_path / "store")
    done = train_with_fault(STORE_FILLS_UP, uri=uri, project=synthetic_project, tmp_path=tmp_path)
    stderr = clean_failure(done, 10, "training failed")
    message = stderr[stderr.index("ml-project: training failed: ") :]
    assert message.count("\n") == 1, message  # one paragraph
    assert "database or disk is full" in message
    for leak in ("[SQL:", "INSERT", "UPDATE", "parameters:", "sqlalche.me"):
        assert leak not in message, message
    assert "could not record the failure" in message
    assert "ml-project settle --env dev" in message and "show --env dev" in message
    client = MlflowClient(uri)
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    assert version.tags.get("validation_status") not in ("passed", "failed")
    assert "champion" not in client.get_registered_model(MODEL).aliases
    # space is back: the advice works
    settled = run_cli(
        "settle", "--env", "dev", "--problem", BINARY, "--json",
        cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    assert settled.returncode == 0, settled.stderr
    assert settled.stdout.splitlines()[0].startswith(f"Settled in {MODEL}")
    after = client.get_model_version(MODEL, version.version)
    assert after.tags["validation_status"] == "failed"
    assert client.get_run(version.run_id).info.status == "KILLED"


DISK_FULL_FROM_THE_START = """
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "connect")
def _small_disk(dbapi_connection, record):  # the database cannot grow past PAGES pages
    dbapi_connection.execute("PRAGMA max_page_count = %d")
"""
PAGES = 35  # with the locked MLflow: full after its first migrations, before the last one


def test_a_store_whose_first_migration_stopped_is_named_with_its_fix(synthetic_project, tmp_path):
    """A disk that fills while MLflow creates a new store leaves it half migrated, and MLflow
    then fails on it for good ("table ... already exists"): the error says so and names the fix
    that works."""
    (tmp_path / "store").mkdir()
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    full = train_with_fault(
        DISK_FULL_FROM_THE_START % PAGES, uri=uri, project=synthetic_project, tmp_path=tmp_path
    )
    clean_failure(full, 9, "tracking store error")
    # space is back, but the store stays broken: said in one paragraph, with the fix
    for command in (("show", "--env", "dev"), ("train", "--env", "dev")):
        done = run_cli(
            *command, "--problem", BINARY, cwd=synthetic_project, tracking_uri=uri
        )  # fmt: skip
        stderr = clean_failure(done, 9, "tracking store error")
        message = stderr[stderr.index("ml-project: tracking store error: ") :]
        assert message.count("\n") == 1, message
        assert "stopped part-way through a schema migration" in message
        assert f"It holds no runs: delete {tmp_path / 'store' / 'mlflow.db'}" in message
        assert "[SQL:" not in message
    (tmp_path / "store" / "mlflow.db").unlink()  # the fix it names
    done = run_cli("settle", "--env", "dev", "--problem", BINARY, cwd=synthetic_project,
                   tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert MlflowClient(uri).search_experiments()  # a working store again
