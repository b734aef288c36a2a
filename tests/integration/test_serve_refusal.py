"""`ml-project serve` refuses a model it must not load before it says anything about serving it:
no "Serving ... on http://..." line, no open port, exit 8; and a port it cannot bind with one
paragraph naming the port (exit 11), after which nothing serves."""

import socket

import mlflow.sklearn
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from tests.conftest import empty_store, run_cli
from tests.integration.test_faults_cli import clean_failure

pytestmark = pytest.mark.integration


def test_a_pickled_model_is_refused_before_any_serving_line(synthetic_project, tmp_path):
    folder = tmp_path / "pickled"
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    mlflow.sklearn.save_model(model, str(folder), serialization_format="cloudpickle")
    store = empty_store(tmp_path)
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


def test_a_port_in_use_is_one_paragraph_naming_it_and_exit_11(synthetic_models, synthetic_project):
    trained = synthetic_models["binary"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = run_cli(
            "serve", "--env", "dev", "--problem", trained["problem"], "--port", str(port),
            cwd=synthetic_project, tracking_uri=trained["uri"], timeout=120,
        )  # fmt: skip
    stderr = clean_failure(done, 11, "environment error")
    assert f"Port {port} on 127.0.0.1 is already in use by another process" in stderr
    assert "choose another --port" in stderr
    assert "Serving" not in done.stdout + stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_a_host_that_is_not_this_machines_is_a_usage_error(synthetic_models, synthetic_project):
    trained = synthetic_models["binary"]
    done = run_cli(
        "serve", "--env", "dev", "--problem", trained["problem"], "--host", "192.0.2.1",
        cwd=synthetic_project, tracking_uri=trained["uri"], timeout=120,
    )  # fmt: skip
    stderr = clean_failure(done, 2, "configuration error")
    assert "--host 192.0.2.1 is not an address of this machine" in stderr
    assert "Serving" not in done.stdout + stderr
