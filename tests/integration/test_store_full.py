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
    injected,
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
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, cwd=synthetic_project, tracking_uri=uri,
        env=injected(STORE_FILLS_UP, tmp_path, synthetic_project),
    )  # fmt: skip
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
