"""`ml-project serve` refuses a model it must not load before it says anything about serving it:
no "Serving ... on http://..." line, no open port, exit 8."""

import mlflow.sklearn
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_a_pickled_model_is_refused_before_any_serving_line(synthetic_project, tmp_path):
    folder = tmp_path / "pickled"
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    mlflow.sklearn.save_model(model, str(folder), serialization_format="cloudpickle")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=store).search_experiments()  # an existing, empty store
    done = run_cli(
        "serve", "--env", "dev", "--problem", "synthetic_binary", "--model-uri", str(folder),
        "--port", "1",  # never opened: the refusal comes first
        cwd=synthetic_project, tracking_uri=store, timeout=120,
    )  # fmt: skip
    assert done.returncode == 8, done.stderr
    assert "Serving" not in done.stdout + done.stderr
    assert "cloudpickle" in done.stderr and "skops files only" in done.stderr
    assert "Traceback" not in done.stderr
