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
