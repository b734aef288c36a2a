"""A running `ml-project serve` follows `champion` on a real `mlflow server`: clients sending
requests without pause see no failed request while the alias moves to a version the gate passed,
the new version answers within seconds, and a version without a passed verdict or one that does
not load is never switched to. A server started on a pinned version (with two workers) never
switches.

The versions are copies of the session's dev champion (`copy_model_version` keeps the tags its
gate wrote: a passed verdict); the unjudged one has its verdict replaced by what the gate writes
on a failure, the unloadable one is a cloudpickle file tagged passed by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import mlflow.sklearn
import pytest
import requests
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from ml_project.follower import Live, SwitchingApp
from tests.conftest import copy_store, run_cli
from tests.integration.tracking_server import free_port, start_tracking_server
from tests.synthetic import CATEGORICAL, NUMERIC, make_table

pytestmark = pytest.mark.integration

PROBLEM = "synthetic_binary"
MODEL = "synthetic_binary_dev"
POLL_SECONDS = 0.5
SWITCH_SECONDS = 20  # the alias moved -> the new version answers (a poll, a load, a swap)
STARTUP_SECONDS = 120
COLUMNS = [*NUMERIC, *CATEGORICAL]  # the model's input columns (raw records may hold more)


@pytest.fixture(scope="module")
def registry(synthetic_models, tmp_path_factory):
    """A real `mlflow server` over a copy of the session's dev store: version 1 of MODEL is the
    champion its gate passed (the artifacts stay where that training wrote them)."""
    folder = tmp_path_factory.mktemp("switch-server")
    copy_store(synthetic_models["binary"]["uri"], folder)
    server = start_tracking_server(folder)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Server:
    """A `ml-project serve` process (the real CLI) on a free loopback port, with its progress
    lines in `log`; `ready` waits for its "Serving ... on http://..." line."""

    url: str
    process: subprocess.Popen
    log: Path
    banner: str = ""

    @classmethod
    def start(cls, project: Path, tracking_uri: str, log: Path, *args: str) -> Server:
        port = free_port()
        environ = {**os.environ, "PYTHONPATH": str(project), "MLFLOW_TRACKING_URI": tracking_uri,
                   "ML_PROJECT_QUIET": ""}  # fmt: skip
        environ.pop("ML_PROJECT_ROOT", None)
        command = [sys.executable, "-m", "ml_project", "serve", "--env", "dev",
                   "--problem", PROBLEM, "--port", str(port), *args]  # fmt: skip
        with open(log, "w") as handle:
            process = subprocess.Popen(
                command, cwd=project, env=environ, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return cls(f"http://127.0.0.1:{port}", process, log)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> Server:
        deadline = time.monotonic() + STARTUP_SECONDS
        while f"on {self.url} " not in self.stderr():
            assert self.process.poll() is None, self.stderr()[-3000:]
            assert time.monotonic() < deadline, self.stderr()[-3000:]
            time.sleep(0.1)
        self.banner = next(line for line in self.stderr().splitlines() if "Serving" in line)
        return self

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextlib.contextmanager
def servers(*started: Server):
    """The servers, each once ready; all stopped by PID at the end."""
    try:
        yield [server.ready() for server in started]
    finally:
        for server in started:
            server.stop()


@dataclass
class Clients:
    """Threads posting the same rows to a server without pause, each on a kept-alive
    connection: what each answer said (time, status, X-Model-Version) and every failure."""

    url: str
    answers: list[tuple[float, int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, body: bytes) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    reply = session.post(f"{self.url}/invocations", data=body, timeout=30,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
                except requests.RequestException as exc:
                    self.failures.append(repr(exc))
                    continue
                version = reply.headers.get("X-Model-Version", "")
                self.answers.append((time.monotonic(), reply.status_code, version))
                if reply.status_code != 200 or len(reply.json()["predictions"]) != 5:
                    self.failures.append(f"{reply.status_code}: {reply.text[:500]}")

    def versions_since(self, moment: float) -> list[str]:
        return [version for when, _, version in list(self.answers) if when >= moment]

    def wait_for(self, version: str, since: float) -> float:
        """Seconds from `since` to the first answer by `version` (fails after SWITCH_SECONDS)."""
        deadline = since + SWITCH_SECONDS
        while time.monotonic() < deadline:
            for when, _, said in list(self.answers):
                if when >= since and said == version:
                    return when - since
            time.sleep(0.05)
        raise AssertionError(f"version {version} did not answer within {SWITCH_SECONDS} s")


@contextlib.contextmanager
def clients(url: str, count: int = 2):
    rows = make_table("binary", rows=5, seed=3)[COLUMNS]
    body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
    load = Clients(url)
    threads = [threading.Thread(target=load.run, args=(body.encode(),)) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=60)


def copy_of_champion(client: MlflowClient) -> str:
    """A new version of MODEL from the champion's files, with the tags its gate wrote."""
    champion = client.get_model_version_by_alias(MODEL, "champion")
    return str(client.copy_model_version(f"models:/{MODEL}/{champion.version}", MODEL).version)


def promote(project: Path, uri: str, version: str) -> float:
    """`ml-project promote --version N` (forced, recorded): the moment the alias moved."""
    done = run_cli("promote", "--env", "dev", "--problem", PROBLEM, "--version", version,
                   "--reason", "serving switch test", cwd=project, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return time.monotonic()


def plant_unloadable_version(uri: str) -> str:
    """A version of MODEL that training never writes (a cloudpickle file), tagged as passed."""
    client = MlflowClient(uri)
    mlflow.set_tracking_uri(uri)  # restored after the test (tests/conftest.py)
    with mlflow.start_run(experiment_id=client.create_experiment("planted")):
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="m",
            registered_model_name=MODEL, serialization_format="cloudpickle",
        )  # fmt: skip
    version = str(info.registered_model_version)
    for key, value in {"validation_status": "passed", "ml_project.problem": PROBLEM}.items():
        client.set_model_version_tag(MODEL, version, key, value)
    return version


def test_serving_follows_champion_to_judged_versions_only_without_a_failed_request(
    registry, synthetic_project, tmp_path
):
    uri, client = registry.url, MlflowClient(registry.url)
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    both = servers(
        Server.start(synthetic_project, uri, tmp_path / "follows.log",
                     "--poll-interval", str(POLL_SECONDS)),
        Server.start(synthetic_project, uri, tmp_path / "pinned.log",
                     "--model-uri", f"models:/{MODEL}/1", "--workers", "2"),
    )  # fmt: skip
    with both as (server, fixed), clients(server.url) as load:
        # the line is printed once the port listens and the model is loaded: no retry needed
        assert requests.get(f"{fixed.url}/ping", timeout=5).status_code == 200
        assert "version 1, problem synthetic_binary" in server.banner
        assert f"following @champion every {POLL_SECONDS:g} s" in server.banner
        assert "with 2 worker(s); stop" in fixed.banner  # pinned: no following
        load.wait_for("1", time.monotonic())

        # a judged version: switched to within seconds, no request failing meanwhile
        judged = copy_of_champion(client)
        moved = promote(synthetic_project, uri, judged)
        assert load.wait_for(judged, moved) < SWITCH_SECONDS
        switched = time.monotonic()

        # a version whose verdict is not `passed`: the alias moves, the server does not
        unjudged = copy_of_champion(client)
        client.set_model_version_tag(MODEL, unjudged, "validation_status", "failed")
        client.set_model_version_tag(MODEL, unjudged, "validation_reasons", "roc_auc too low")
        moved = promote(synthetic_project, uri, unjudged)
        # a version that passed but does not load: kept out the same way
        broken = plant_unloadable_version(uri)
        time.sleep(10 * POLL_SECONDS)
        moved_again = promote(synthetic_project, uri, broken)
        time.sleep(10 * POLL_SECONDS)
        client.delete_registered_model_alias(MODEL, "champion")  # no champion at all
        time.sleep(6 * POLL_SECONDS)
        late = time.monotonic()
        answers_at_pinned = requests.post(
            f"{fixed.url}/invocations", timeout=30,
            json={"dataframe_split": json.loads(
                make_table("binary", rows=2)[COLUMNS].to_json(orient="split", index=False))},
        )  # fmt: skip

    assert (server.process.returncode, fixed.process.returncode) == (0, 0)  # stopped gracefully
    assert load.failures == [], load.failures[:5]
    assert set(load.versions_since(switched)) == {judged}, "switched back or further"
    assert len(load.versions_since(moved)) > 20 and len(load.versions_since(moved_again)) > 20
    assert load.versions_since(late - 1)  # still answering at the end
    log = server.stderr()
    assert log.count(f"now serving version {judged} of {MODEL} (was 1)") == 1, log[-3000:]
    moved_to = f"ml-project serve: @champion of {MODEL} moved to version"
    said = f"{moved_to} {unjudged}, which has validation_status=failed: a running server switches"
    assert log.count(said) == 1, log[-3000:]
    assert log.count(f"{moved_to} {broken}, which could not be loaded (") == 1, log[-3000:]
    gone = f"ml-project serve: {MODEL} has no @champion now; still serving version {judged}."
    assert log.count(gone) == 1, log[-3000:]
    assert log.count(f"; still serving version {judged}.") >= 3, log[-3000:]
    assert "now serving" not in fixed.stderr()
    assert "Traceback" not in log, log[-3000:]
    assert answers_at_pinned.status_code == 200
    assert answers_at_pinned.headers["X-Model-Version"] == "1"


def test_a_request_in_flight_at_the_swap_is_answered_whole_by_the_old_model():
    """SwitchingApp, driven with ASGI messages: a request that arrived before the swap (still
    waiting for its body) is answered by the old app under the old version's header; the one
    after goes to the new app."""

    def app_saying(word: str):
        async def app(scope, receive, send):
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": word.encode()})

        return app

    switching = SwitchingApp(Live(app_saying("old"), MODEL, "1"))

    async def request(body: asyncio.Event) -> tuple[dict, bytes]:
        sent = []

        async def receive():
            await body.wait()
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            sent.append(message)

        await switching({"type": "http", "method": "POST", "path": "/invocations"}, receive, send)
        return dict(sent[0]["headers"]), sent[1]["body"]

    async def scenario():
        arrived, ready = asyncio.Event(), asyncio.Event()
        ready.set()
        in_flight = asyncio.create_task(request(arrived))
        await asyncio.sleep(0)  # it has taken the serving reference and waits for its body
        switching.swap(Live(app_saying("new"), MODEL, "2"))
        after = await request(ready)
        arrived.set()
        return await in_flight, after

    before, after = asyncio.run(scenario())
    assert before == ({b"x-model-name": MODEL.encode(), b"x-model-version": b"1"}, b"old")
    assert after == ({b"x-model-name": MODEL.encode(), b"x-model-version": b"2"}, b"new")
