"""Online serving with MLflow's own server: a real process, a real HTTP request, per task kind.

The served model answers what `model.predict` answers (a classifier's class, a regressor's
value); the batch path adds a classifier's probabilities (test_predict_cli.py)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import in_process_predictions
from tests.integration.tracking_server import free_port
from tests.synthetic import KINDS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def serve_entrypoint() -> list[str]:
    """The serving image's ENTRYPOINT, read from the Dockerfile's `serve` stage."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stage = text.split("FROM runtime AS serve", 1)[1].split("\nFROM ", 1)[0]
    line = next(row for row in stage.splitlines() if row.startswith("ENTRYPOINT "))
    return json.loads(line.removeprefix("ENTRYPOINT "))


@contextlib.contextmanager
def serving(tracking_uri: str, model_uri: str, log: Path, *, project: Path):
    """The serving image's own command on `model_uri`, run from `project` (the image's
    /project), on a free loopback port: yields its URL once /ping answers; stopped by PID."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    environ = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MODEL_URI": model_uri,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SERVING_WORKERS": "1",
        "SERVING_ENV": "dev",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    with open(log, "w") as handle:
        process = subprocess.Popen(
            serve_entrypoint(),
            cwd=project,
            env=environ,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the model server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module", params=KINDS)
def served(request, scoring_batches, synthetic_project, tmp_path_factory):
    """A kind's dev champion served: yields (url, the kind's scoring store)."""
    store = scoring_batches[request.param]
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with serving(store["uri"], store["model_uri"], log, project=synthetic_project) as url:
        yield url, store


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_served_predictions_equal_in_process_ones(served, synthetic_project):
    url, store = served
    rows = pd.read_parquet(store["batch"]).head(200)
    # the raw records as extract-batch writes them, key and label included: the model ignores them
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    status, reply = post(url, json.dumps(body).encode())
    assert status == 200, reply
    expected = in_process_predictions(
        store["uri"], store["model_uri"], store["batch"], synthetic_project
    )
    assert reply["predictions"] == expected["prediction"][:200]
    if expected["task"] == "regression":
        assert all(isinstance(value, float) for value in reply["predictions"])
    else:
        assert set(reply["predictions"]) <= set(expected["classes"])


@pytest.mark.parametrize(
    "body",
    [
        b'{"dataframe_split": {"columns": ["colour"], "data": [["red"]]}}',
        b'{"not_a_format": []}',
        b"this is not json",
    ],
)
def test_malformed_requests_get_a_4xx(served, body):
    status, _ = post(served[0], body)
    assert 400 <= status < 500


@pytest.mark.parametrize(
    ("column", "value", "says", "tail"),
    [
        ("x1", 50.0, "column 'x1' must be >= -10 and <= 10", "break it, e.g. 50.0"),
        (
            "colour",
            "purple",
            "column 'colour' must be one of 'red', 'green', 'blue', 'grey'",
            "break it, e.g. 'purple'",
        ),
        ("colour", None, "column 'colour' must not be null", "hold no value"),
    ],
)
def test_a_row_breaking_an_input_rule_gets_a_400_naming_the_rule(served, column, value, says, tail):
    """The model-input suite's hard rules travel inside the model: the server refuses what
    batch `predict` refuses, with the rule, its suite item and the value."""
    url, store = served
    rows = pd.read_parquet(store["batch"]).head(3)
    rows[column] = rows[column].astype(object)
    rows.loc[rows.index[1], column] = value
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    status, reply = post(url, json.dumps(body).encode())
    assert status == 400, reply
    assert reply["error_code"] == "INVALID_PARAMETER_VALUE"
    message = reply["message"]
    assert "The model's input rules refuse these rows: " + says in message
    assert "/expectations/model_input.yaml, expectation " in message
    assert f"1 of 3 row(s) {tail}" in message
