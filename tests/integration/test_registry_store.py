"""Alias moves and their history against a real (temporary) sqlite registry."""

import fcntl
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml_project import registry
from ml_project.registry import AliasChanged, Move
from tests.conftest import empty_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return empty_store(tmp_path_factory.mktemp("registry-store"))


@pytest.fixture(scope="module")
def client(store):
    return MlflowClient(tracking_uri=store)


@pytest.fixture
def m(client, request, tmp_path):
    """A new registered model with three versions (empty sources: only aliases are tested)."""
    name = f"m_{request.node.name}"
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source=tmp_path.as_uri())
    return name


def test_a_move_records_who_why_and_from_where(client, m, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "ci-bot")
    entry = registry.move_alias(
        client, m, "champion", "1", move=Move("gate", "passed", "abc123", "run1"), expected=None
    )
    assert registry.alias_version(client, m, "champion") == "1"
    assert entry["from_version"] is None and entry["to_version"] == "1"
    registry.move_alias(client, m, "champion", "2", move=Move("forced", "hotfix", "def456"))
    history = registry.history(client, m)
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, "1"), ("1", "2")]
    assert [e["reason"] for e in history] == ["passed", "hotfix"]
    assert {e["actor"] for e in history} == {"ci-bot"}
    assert history[0]["commit"] == "abc123" and history[0]["run_id"] == "run1"


def test_a_move_is_refused_when_the_alias_moved_since_it_was_read(client, m):
    registry.move_alias(client, m, "champion", "1", move=Move("gate", "first"), expected=None)
    with pytest.raises(AliasChanged) as refused:
        registry.move_alias(client, m, "champion", "2", move=Move("gate", "stale"), expected=None)
    assert refused.value.current == "1"
    assert registry.alias_version(client, m, "champion") == "1"
    assert len(registry.history(client, m)) == 1


def test_a_process_removes_only_its_own_challenger(client, m):
    registry.move_alias(client, m, "challenger", "2", move=Move("registered", "v2"))
    registry.move_alias(client, m, "challenger", "3", move=Move("registered", "v3"))
    assert not registry.remove_alias_if(client, m, "challenger", "2", move=Move("verdict", ""))
    assert registry.alias_version(client, m, "challenger") == "3"
    assert registry.remove_alias_if(client, m, "challenger", "3", move=Move("verdict", ""))
    assert registry.alias_version(client, m, "challenger") is None
    last = registry.history(client, m)[-1]
    assert (last["from_version"], last["to_version"]) == ("3", None)


def test_a_move_waits_while_another_process_holds_the_lock_beside_the_sqlite_store(
    client, m, store
):
    """Hold the lock file as another process would: the move must not happen until it is
    released (a no-op lock lets the move through at once, and this test fails)."""
    database = Path(store.removeprefix("sqlite:///"))
    move = threading.Thread(
        target=registry.move_alias,
        args=(client, m, "champion", "1"),
        kwargs={"move": Move("gate", "")},
    )
    with open(database.parent / (database.name + ".promotion.lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        move.start()
        move.join(timeout=2)
        assert move.is_alive(), "the alias moved while another process held the lock"
        assert registry.alias_version(client, m, "champion") is None
        fcntl.flock(held, fcntl.LOCK_UN)
    move.join(timeout=60)
    assert not move.is_alive()
    assert registry.alias_version(client, m, "champion") == "1"


def test_a_missing_model_or_version_is_a_registry_error(client, m):
    assert registry.alias_version(client, "nope", "champion") is None
    assert registry.history(client, "nope") == []
    with pytest.raises(registry.RegistryError, match="has no version 9"):
        registry.get_version(client, m, "9")
