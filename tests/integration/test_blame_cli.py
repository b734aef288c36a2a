"""Messages name the cause a user can act on: the setting and where it was set when it makes the
label one-class, the source column a derived label is made of, a key from `--set` that is not
unique as a configuration error. The real CLI, a real store; nothing is left behind."""

import re
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import commit_all, empty_store, make_project_copy, run_cli
from tests.synthetic import write_problem

pytestmark = pytest.mark.integration

DERIVED = '''"""A label made from a column: whether `target` is above a threshold."""

import pandas as pd
import pydantic


class Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    max_iter: int = 60
    learning_rate: float = 0.1
    high_above: float = 10.0


def label(records: pd.DataFrame, params: Params) -> pd.Series:
    value = pd.to_numeric(records["target"], errors="coerce")
    return (value > params.high_above).astype("float64").where(value.notna())
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project with `derived`: a binary label `high` that label() makes of column target."""
    root = make_project_copy(tmp_path_factory.mktemp("blame") / "project")
    write_problem(root, "regression", name="derived")
    write_problem(root, "binary")
    folder = root / "problems" / "derived"
    (folder / "problem.py").write_text(DERIVED)
    base = (folder / "environments" / "base.yaml").read_text()
    base = base.replace("task: regression", "task: binary").replace("label: target", "label: high")
    base = base.replace("floors: {'r2': 0.5}", "floors: {'roc_auc': 0.6}")
    base = base.replace("primary_metric: rmse", "primary_metric: roc_auc")
    (folder / "environments" / "base.yaml").write_text(base)
    commit_all(root, "a derived label")
    return root


def train(project: Path, tmp_path: Path, *args: str):
    uri = empty_store(tmp_path)
    done = run_cli("train", "--env", "dev", *args, cwd=project, tracking_uri=uri)
    return done, uri


def assert_nothing_left(uri: str) -> None:
    client = MlflowClient(tracking_uri=uri)
    assert client.search_model_versions() == []
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = (
        client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
    )
    assert running == []


def message(done) -> str:
    assert "Traceback" not in done.stderr
    return " ".join(done.stderr.split())


def test_a_threshold_set_on_the_command_line_is_named_when_the_label_has_one_class(
    project, tmp_path
):
    done, uri = train(project, tmp_path, "--problem", "derived", "--set", "params.high_above=1e9")
    assert done.returncode == 3, done.stderr
    text = message(done)
    assert "The label high has one class (0.0) in all 3000 labelled records" in text
    assert "data.sample_fraction and split.test_fraction are not the cause" in text
    assert "label() in" in text and "problems/derived/problem.py" in text
    assert re.search(
        r"from column target of table derived holds \d+ distinct values in 3000 of", text
    )
    assert "params.high_above=1e9 (set in the command line (--set))" in text
    assert_nothing_left(uri)


def test_an_empty_source_column_is_named_not_the_derived_label(project, tmp_path):
    empty = tmp_path / "derived.csv"
    table = pd.read_csv(project / "data" / "derived.csv")
    table["target"] = None
    table.to_csv(empty, index=False)
    done, uri = train(project, tmp_path, "--problem", "derived", "--table", f"derived={empty}")
    assert done.returncode == 3, done.stderr
    text = message(done)
    assert "None of the 3000 records of problem derived has a label high" in text
    assert "column target of table derived holds no value in its 3000 records" in text
    assert "sample_fraction" not in text
    assert_nothing_left(uri)


def test_a_label_column_of_one_value_is_named_with_its_table(project, tmp_path):
    same = tmp_path / "binary.csv"
    table = pd.read_csv(project / "data" / "synthetic_binary.csv")
    table["target"] = "no"
    table.to_csv(same, index=False)
    done, uri = train(
        project, tmp_path, "--problem", "synthetic_binary", "--table", f"synthetic_binary={same}"
    )
    assert done.returncode == 3, done.stderr
    text = message(done)
    assert "The label target has one class (no) in all 3000 labelled records" in text
    assert "column target of table synthetic_binary holds one value (no) in 3000 of 3000" in text
    assert_nothing_left(uri)


def test_a_key_set_on_the_command_line_that_is_not_unique_is_a_configuration_error(
    project, tmp_path
):
    done, uri = train(
        project, tmp_path, "--problem", "synthetic_binary", "--set", "data.key_columns=[colour]"
    )
    assert done.returncode == 2, done.stderr
    text = message(done)
    assert "data.key_columns=['colour'] (set in the command line (--set))" in text
    assert "does not name one record per row" in text
    assert_nothing_left(uri)


def test_a_duplicated_key_in_the_file_stays_a_data_error(project, tmp_path):
    doubled = tmp_path / "binary.csv"
    table = pd.read_csv(project / "data" / "synthetic_binary.csv")
    table.loc[1, "id"] = table.loc[0, "id"]
    table.to_csv(doubled, index=False)
    done, uri = train(
        project, tmp_path, "--problem", "synthetic_binary", "--table", f"synthetic_binary={doubled}"
    )
    assert done.returncode == 3, done.stderr
    assert "share their key" in message(done) or "unique" in message(done)
    assert_nothing_left(uri)
