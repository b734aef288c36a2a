"""Online serving with MLflow's own server: a real process, a real HTTP request."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.conftest import in_process_predictions

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_entrypoint() -> list[str]:
    """The serving image's ENTRYPOINT, read from the Dockerfile's `serve` stage."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stage = text.split("FROM runtime AS serve", 1)[1].split("\nFROM ", 1)[0]
    line = next(row for row in stage.splitlines() if row.startswith("ENTRYPOINT "))
    return json.loads(line.removeprefix("ENTRYPOINT "))


@pytest.fixture(scope="module")
def server(scoring_store, tmp_path_factory):
    """The serving image's own command on the champion, on a free loopback port; stopped by PID."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    log = tmp_path_factory.mktemp("serve") / "server.log"
    environ = {
        **os.environ,
        "MLFLOW_TRACKING_URI": scoring_store["uri"],
        "MODEL_URI": "models:/flights_delay_dev@champion",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SERVING_WORKERS": "1",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    with open(log, "w") as handle:
        process = subprocess.Popen(
            serve_entrypoint(),
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


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_served_predictions_equal_in_process_ones(server, scoring_store, project_copy):
    rows = pd.read_parquet(scoring_store["batch"]).head(200)
    # the raw record as joined for training, outcome columns included: the model ignores them
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    status, reply = post(server, json.dumps(body).encode())
    assert status == 200, reply
    expected = in_process_predictions(
        scoring_store["uri"],
        "models:/flights_delay_dev@champion",
        scoring_store["batch"],
        project_copy,
    )
    assert reply["predictions"] == expected["prediction"][:200]


@pytest.mark.parametrize(
    "body",
    [
        b'{"dataframe_split": {"columns": ["carrier"], "data": [["AA"]]}}',
        b'{"not_a_format": []}',
        b"this is not json",
    ],
)
def test_malformed_requests_get_a_4xx(server, body):
    status, _ = post(server, body)
    assert 400 <= status < 500
