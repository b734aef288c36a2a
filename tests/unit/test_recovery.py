"""What a later training settles, and what it must leave alone: only a run known to be gone."""

import time
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

from ml_project import recovery

MODEL = "m_dev"


class Store:
    """A registry holding one version under `challenger`, whose run `get_run` cannot read."""

    tracking_uri = "http://tracking.invalid"

    def __init__(self, failure: Exception, status: str = "pending"):
        self.failure = failure
        self.version = SimpleNamespace(
            version="1", run_id="r1", source="models:/m-0123abcd", creation_timestamp=0,
            tags={"run_id": "r1", "validation_status": status},
        )  # fmt: skip
        self.writes: list[tuple] = []

    def search_model_versions(self, query):
        return [self.version]

    def get_model_version(self, name, version):
        return self.version

    def get_registered_model(self, name):
        return SimpleNamespace(aliases={"challenger": "1"}, tags={}, description="")

    def get_run(self, run_id):
        raise self.failure

    def __getattr__(self, name):  # every write: recorded, so the test can say none happened
        return lambda *args, **kwargs: self.writes.append((name, args))


UNANSWERED = [
    MlflowException("503 Service Unavailable", error_code=TEMPORARILY_UNAVAILABLE),
    TimeoutError("timed out"),
]


@pytest.mark.parametrize("failure", UNANSWERED, ids=["503", "timeout"])
@pytest.mark.parametrize("status", ["pending", "passed"])
def test_a_run_the_store_cannot_read_is_unknown_and_nothing_is_settled(failure, status):
    store = Store(failure, status)
    assert recovery.orphan_reason(store, store.version) is None
    assert recovery.settle_orphans(store, MODEL) == []
    assert store.writes == []  # keeps its alias and tags; its run is not killed
    assert store.version.tags["validation_status"] == status


def test_a_run_the_store_does_not_know_is_gone():
    store = Store(MlflowException("no run r1", error_code=RESOURCE_DOES_NOT_EXIST))
    assert recovery.orphan_reason(store, store.version) == "its run r1 is gone"


def test_a_registered_model_named_m_dash_is_no_logged_model_uri():
    """`models:/m-<hex>` names a logged model; a registered model may be called m-churn_prod,
    and the loaders must still look its files' record up as a version's (loading.py)."""
    from ml_project.vocabulary import LOGGED_MODEL_URI

    assert LOGGED_MODEL_URI.match("models:/m-aa78231922c54afc898bcb3e91becc9d").group(1)
    assert LOGGED_MODEL_URI.match("models:/m-0123abcd/MLmodel")
    for name in ("models:/m-churn_prod@champion", "models:/m-churn_prod/3", "models:/x/1"):
        assert LOGGED_MODEL_URI.match(name) is None, name


def test_a_version_settled_as_it_is_crowned_gives_the_champion_back(monkeypatch):
    """The settle's write landed between the job's check and its move: the job moves
    `champion` back to the version before, then fails (exit 10)."""
    from types import SimpleNamespace

    import pytest

    from ml_project import promotion, registry
    from ml_project.errors import TrainingFailedError
    from ml_project.vocabulary import SETTLED

    settled = SimpleNamespace(tags={SETTLED: "no verdict: its run is silent (settled by x)"})
    moves = []
    monkeypatch.setattr(registry, "get_version", lambda client, name, version: settled)
    monkeypatch.setattr(
        registry, "move_alias", lambda *args, **kwargs: moves.append((args[1:], kwargs))
    )
    move = registry.Move("gate", "passed", "abc", "run1")
    with pytest.raises(TrainingFailedError, match="was settled while this job was judging it"):
        promotion.give_back_if_settled(object(), "m_prod", "4", "3", move)
    ((args, kwargs),) = moves
    assert args == ("m_prod", "champion", "3") and kwargs["expected"] == "4"
    settled.tags = {}  # not settled: nothing moves back
    promotion.give_back_if_settled(object(), "m_prod", "4", "3", move)
    assert len(moves) == 1


class Runs:
    """A store whose `get_run` answers with one run (or raises `failure`)."""

    def __init__(
        self, status: str = "RUNNING", failure: Exception | None = None, beat: int | None = 0
    ):
        # beat: its last heartbeat (0: silent since 1970, known gone; None: beating, its last
        # beat the moment it is asked, not when pytest collected the test: a long suite runs
        # it minutes later)
        self.failure, self.beat = failure, beat
        tags = {"ml_project.host": "elsewhere.invalid", "ml_project.pid": "1"}
        info = SimpleNamespace(status=status, lifecycle_stage="active")
        self.run = SimpleNamespace(info=info, data=SimpleNamespace(tags=tags))

    def get_run(self, run_id):
        if self.failure is not None:
            raise self.failure
        beat = int(time.time()) if self.beat is None else self.beat
        self.run.data.tags["ml_project.heartbeat"] = str(beat)
        return self.run


@pytest.mark.parametrize(
    ("runs", "running", "status_only"),
    [(Runs(failure=UNANSWERED[0]), None, None),  # unknown: neither gone nor live
     (Runs(failure=MlflowException("no", error_code=RESOURCE_DOES_NOT_EXIST)), False, False),
     (Runs("FINISHED"), False, False),
     (Runs("RUNNING"), False, True),  # RUNNING, but its process is silent: not live
     (Runs("RUNNING", beat=None), True, True)],  # beating
)  # fmt: skip
def test_running_tells_live_from_still_running_and_unknown(runs, running, status_only):
    assert recovery.running(runs, "r1") is running
    assert recovery.running(runs, "r1", process_too=False) is status_only
