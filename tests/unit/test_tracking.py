"""The MLflow edge's pure helpers: the dataset schema we declare instead of MLflow's scan."""

import numpy as np
import pandas as pd
import pytest
from mlflow.types.utils import _infer_schema

from ml_project import tracking

pytestmark = pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")


def frame_of_every_kind() -> pd.DataFrame:
    """Text with and without gaps (leading ones too), integers, floats with NaN, booleans, times."""
    return pd.DataFrame(
        {
            "region": ["north", "south", "east", "west"],
            "code": [None, None, "N14228", np.nan],
            "id": np.array([1545, 1714, 725, 461], dtype="int64"),
            "month": np.array([1, 1, 2, 2], dtype="int32"),
            "size": [39.02, np.nan, 39.92, 39.02],
            "rarely": [np.nan, np.nan, np.nan, 21.0],
            "target": [True, False, False, True],
            "when": pd.to_datetime(["2013-01-01 05:00"] * 4),
        }
    )


@pytest.mark.parametrize("rows", [slice(None), slice(2, None), slice(0, 1)])
@pytest.mark.parametrize("index", ["range", "repeated"])
def test_dataset_schema_is_what_mlflow_infers(rows, index):
    frame = frame_of_every_kind().iloc[rows]
    if index == "repeated":
        frame = frame.set_axis([7] * len(frame))
    assert tracking.dataset_schema(frame) == _infer_schema(frame)


def test_dataset_schema_marks_a_gap_anywhere_as_optional():
    frame = pd.DataFrame({"size": np.r_[np.ones(10_000), np.nan], "region": ["north"] * 10_001})
    specs = {spec.name: spec for spec in tracking.dataset_schema(frame).inputs}
    assert not specs["size"].required
    assert specs["region"].required


def test_pandas_dataset_carries_our_digest_and_declared_schema():
    frame = frame_of_every_kind()
    dataset = tracking.pandas_dataset(
        frame, source="records.csv", name="records_training", digest="abc123", targets="target"
    )
    assert dataset.digest == "abc123"
    assert dataset.schema == _infer_schema(frame)
    assert dataset.to_dict()["name"] == "records_training"


def test_run_names_carry_the_time_so_repeated_runs_differ():
    import re

    assert re.fullmatch(
        r"train-dev-abc1234-\d{8}T\d{6}Z", tracking.run_name("train", "dev", "abc1234")
    )
    assert re.fullmatch(r"promote-\d{8}T\d{6}Z", tracking.run_name("promote", ""))


def test_a_verdict_lookup_names_the_run_that_checked_and_never_fails_a_training():
    from types import SimpleNamespace

    def run(run_id, **tags):
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id), data=SimpleNamespace(tags=tags))

    class Store:
        def __init__(self, runs, experiment="1"):
            self.runs, self.experiment, self.filters = runs, experiment, []

        def get_experiment_by_name(self, name):
            return SimpleNamespace(experiment_id=self.experiment) if self.experiment else None

        def search_runs(self, ids, filter_string, max_results, order_by):
            self.filters.append((ids, filter_string))
            if isinstance(self.runs, Exception):
                raise self.runs
            return self.runs

    checked = Store([run("r2", **{"validation.t.evaluated": "7"})])
    assert tracking.verdict_lookup(checked, "x_dev")("t", "abc") == ("r2", 7)
    assert checked.filters == [(["1"], "tags.`validation.t.key` = 'abc'")]
    chained = Store(
        [run("r3", **{"validation.t.evaluated": "7", "validation.t.reused_from": "r1"})]
    )
    assert tracking.verdict_lookup(chained, "x_dev")("t", "abc") == ("r1", 7)
    for store in (
        Store([]),
        Store([run("r4", **{"validation.t.evaluated": "seven"})]),
        Store([run("r5")]),
        Store(OSError("server gone")),
        Store([], experiment=None),
    ):
        assert tracking.verdict_lookup(store, "x_dev")("t", "abc") is None


def test_a_store_failure_is_told_by_its_type_and_code_not_by_its_words(tmp_path):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    from tests.unit.test_registry import locked_error

    assert tracking.store_failed(locked_error(tmp_path))
    assert tracking.sqlite_busy(locked_error(tmp_path))
    assert tracking.store_failed(MlflowException("down", error_code=TEMPORARILY_UNAVAILABLE))
    assert not tracking.store_failed(ValueError("(sqlite3.OperationalError) database is locked"))
    assert not tracking.sqlite_busy(RuntimeError("database is locked"))
    assert not tracking.store_failed(MlflowException("no such version"))
