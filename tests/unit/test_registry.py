"""The pure parts of the registry edge: history replay, the champion stack, lock retries."""

import json
import re
import sqlite3

import pytest

from ml_project import registry, tracking


def entry(alias, action, to_version, from_version=None):
    return {
        "alias": alias,
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
    }


def test_history_is_read_oldest_first_and_ignores_other_tags():
    tags = {
        "promotion.20260102T000000000000Z.bbbbbbbb": json.dumps(entry("champion", "gate", "2")),
        "promotion.20260101T000000000000Z.aaaaaaaa": json.dumps(entry("champion", "gate", "1")),
        "promotion.20260103T000000000000Z.cccccccc": "not json",
        "owner": "data-team",
    }
    assert [item["to_version"] for item in registry.read_history(tags)] == ["1", "2"]


def test_the_champion_stack_pushes_moves_and_pops_rollbacks():
    history = [
        entry("challenger", "registered", "1"),
        entry("champion", "gate", "1"),
        entry("challenger", "verdict", None, "1"),
        entry("champion", "gate", "2", "1"),
        entry("champion", "forced", "4", "2"),
    ]
    assert registry.champion_stack(history) == ["1", "2", "4"]
    history.append(entry("champion", "rollback", "2", "4"))
    assert registry.champion_stack(history) == ["1", "2"]
    history.append(entry("champion", "rollback", "1", "2"))
    assert registry.champion_stack(history) == ["1"]
    history.append(entry("champion", "gate", "5", "1"))
    assert registry.champion_stack(history) == ["1", "5"]


def locked_error(tmp_path) -> Exception:
    """What MLflow raises when another process holds the sqlite store's write lock: its
    MlflowException over SQLAlchemy's OperationalError over sqlite's SQLITE_BUSY."""
    import sqlalchemy
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    database = tmp_path / "locked.db"
    holder = sqlite3.connect(database)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = sqlalchemy.create_engine(f"sqlite:///{database}", connect_args={"timeout": 0})
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("INSERT INTO t VALUES (1)"))
    except sqlalchemy.exc.OperationalError as exc:
        try:
            raise MlflowException(message=exc, error_code=TEMPORARILY_UNAVAILABLE) from exc
        except MlflowException as wrapped:
            return wrapped
    finally:
        holder.close()
        engine.dispose()
    raise AssertionError("the second writer was not refused")


def test_retry_locked_waits_out_a_locked_sqlite_store(monkeypatch, tmp_path):
    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    locked = locked_error(tmp_path)
    calls = []

    def flaky(value):
        calls.append(value)
        if len(calls) < 3:
            raise locked
        return value * 2

    assert tracking.retry_locked(flaky, 21) == 42
    assert len(calls) == 3


def test_retry_locked_raises_other_errors_at_once_and_gives_up_eventually(monkeypatch, tmp_path):
    monkeypatch.setattr(tracking.time, "sleep", lambda seconds: None)
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("database is locked")  # the words alone are no locked store

    with pytest.raises(ValueError, match="database is locked"):
        tracking.retry_locked(broken)
    assert len(calls) == 1
    error = locked_error(tmp_path)

    def locked():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        tracking.retry_locked(locked, attempts=4)
    assert len(calls) == 1 + 4


def test_the_actor_is_the_github_actor_in_ci(monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "release-bot")
    assert registry.actor() == "release-bot"
    monkeypatch.delenv("GITHUB_ACTOR")
    assert registry.actor()


def test_the_history_note_keeps_what_a_person_wrote_and_rewrites_its_own_part():
    moves = [entry("champion", "gate", str(n), str(n - 1) if n > 1 else None) for n in (1, 2)]
    moves[1] |= {"reason": "beats 1 | by 0.02\non roc_auc", "commit": "0123456789abcdef"}
    first = registry.history_note("Owner: data team.", moves[:1])
    assert first.startswith("Owner: data team.\n\n" + registry.HISTORY_NOTE)
    assert "| champion | gate | - -> 1 |" in first
    second = registry.history_note(first, moves)
    assert second.count(registry.HISTORY_NOTE) == 1 and second.startswith("Owner: data team.")
    rows = [line for line in second.splitlines() if line.startswith("| ") and "gate" in line]
    # the pipe and the line break in the reason cannot break the row
    assert len(re.findall(r"(?<!\\)\|", rows[0])) == 8
    assert "1 -> 2" in rows[0] and "beats 1 \\| by 0.02 on roc_auc" in rows[0]
    assert "| 0123456 |" in rows[0] and "- -> 1" in rows[1]  # newest first
    assert registry.history_note("", []).startswith(registry.HISTORY_NOTE)


def test_a_version_carries_the_few_lineage_tags_a_reviewer_reads():
    run_tags = {key: "x" for key in registry.VERSION_LINEAGE_KEYS} | {
        "pkg.mlflow": "3",
        "data.table.t.path": "/data/t.csv",
    }
    tags = registry.version_lineage(run_tags, "run1")
    assert tags == {key: "x" for key in registry.VERSION_LINEAGE_KEYS} | {"run_id": "run1"}
