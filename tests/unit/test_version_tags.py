"""tracking.set_version_tags on a sqlite registry: the same tags as MLflow's per-tag calls, in
one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy.event
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_project import tracking

MODEL = "tags_model"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sqlite store for the module (creating one takes seconds); a model per test."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def client(store: Path, request: pytest.FixtureRequest) -> Iterator[MlflowClient]:
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, source=(store / "model").as_uri())
    yield client
    client.delete_registered_model(MODEL)


def test_same_tags_as_one_call_a_tag(client: MlflowClient) -> None:
    tags = {f"gate.metric_{i}": f"{i / 7:.6f}" for i in range(17)} | {"gate.checks": "[]"}
    tracking.set_version_tags(client, MODEL, "1", tags)
    for key, value in tags.items():
        client.set_model_version_tag(MODEL, "2", key, value)
    assert client.get_model_version(MODEL, "1").tags == client.get_model_version(MODEL, "2").tags
    assert client.get_model_version(MODEL, "1").tags == tags


def test_overwrites_and_keeps_other_tags(client: MlflowClient) -> None:
    client.set_model_version_tag(MODEL, "1", "kept", "yes")
    tracking.set_version_tags(client, MODEL, "1", {"a": "1", "b": "2"})
    tracking.set_version_tags(client, MODEL, "1", {"b": "3"})
    assert client.get_model_version(MODEL, "1").tags == {"kept": "yes", "a": "1", "b": "3"}


def test_one_transaction(client: MlflowClient) -> None:
    """One read (the prompt check) and one write, where MLflow's client makes two a tag."""
    assert tracking._sql_registry_store(client) is not None
    commits = []

    def count(session: object) -> None:
        commits.append(1)

    sqlalchemy.event.listen(sqlalchemy.orm.Session, "after_commit", count)
    try:
        tracking.set_version_tags(client, MODEL, "1", {f"k{i}": str(i) for i in range(10)})
    finally:
        sqlalchemy.event.remove(sqlalchemy.orm.Session, "after_commit", count)
    assert len(commits) == 2


def test_a_missing_version_or_model_is_mlflows_error(client: MlflowClient) -> None:
    with pytest.raises(MlflowException, match="not found"):
        tracking.set_version_tags(client, MODEL, "9", {"a": "1"})
    with pytest.raises(MlflowException, match="not found"):
        tracking.set_version_tags(client, "no_such_model", "1", {"a": "1"})
    assert client.get_model_version(MODEL, "1").tags == {}


def test_an_invalid_tag_writes_none(client: MlflowClient) -> None:
    with pytest.raises(MlflowException):
        tracking.set_version_tags(client, MODEL, "1", {"good": "1", "": "empty key"})
    assert client.get_model_version(MODEL, "1").tags == {}
