"""`ml-project settle`: what a killed job left in an env is settled without waiting for the env's
next training, and a job that may still be running is left alone. A real sqlite store, the real
CLI in a subprocess."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml_project import heartbeat
from ml_project.settings import load_settings
from ml_project.vocabulary import CHALLENGER, CHAMPION, HOST, PID, SETTLED, VALIDATION_STATUS
from tests.conftest import empty_store, last_json, run_cli

pytestmark = pytest.mark.integration

PROBLEM = "synthetic_binary"
PAUSED_GATE = Path(__file__).with_name("paused_gate.py")
ELSEWHERE = {HOST: "a-ci-runner-that-is-not-this-machine", PID: "4242"}


def stopped_job(
    client: MlflowClient, experiment: str, name: str, beat_age_s: float, files: Path
) -> tuple:
    """A training of another machine that registered a version and went silent `beat_age_s`
    ago (before its verdict): its run reads RUNNING, its version waits, `challenger` on it."""
    experiment_id = client.create_experiment(experiment)
    tags = {**ELSEWHERE, **heartbeat.beat(time.time() - beat_age_s)}
    run = client.create_run(experiment_id, tags=tags)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=str(files), run_id=run.info.run_id,
        tags={"run_id": run.info.run_id, VALIDATION_STATUS: "pending"},
    )  # fmt: skip
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return run.info.run_id, version.version


def settle(project: Path, uri: str):
    return run_cli(
        "settle", "--env", "dev", "--problem", PROBLEM, "--json", cwd=project, tracking_uri=uri
    )


@pytest.fixture
def env(synthetic_project, tmp_path):
    uri = empty_store(tmp_path)
    settings = load_settings("dev", problem=PROBLEM, root=synthetic_project)
    (tmp_path / "model").mkdir()
    return uri, MlflowClient(tracking_uri=uri), settings, tmp_path / "model"


def test_a_silent_job_of_another_machine_is_settled_now(synthetic_project, env):
    uri, client, settings, files = env
    silent = heartbeat.STALE_AFTER_S + 120
    run_id, version = stopped_job(
        client, settings.experiment_name, settings.model_name, silent, files
    )
    done = settle(synthetic_project, uri)
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert report["env"] == "dev" and report["model_name"] == settings.model_name
    assert len(report["settled"]) == 1 and report["settled"][0].startswith(f"version {version}:")
    assert "silent for 12 minutes" in report["settled"][0]
    found = client.get_model_version(settings.model_name, version)
    assert found.tags[VALIDATION_STATUS] == "failed"
    assert "settled by ml-project settle" in found.tags["validation_reasons"]
    assert CHALLENGER not in client.get_registered_model(settings.model_name).aliases
    assert client.get_run(run_id).info.status == "KILLED"
    again = settle(synthetic_project, uri)
    assert again.returncode == 0 and last_json(again.stdout)["settled"] == []
    assert again.stdout.startswith("Nothing to settle in")


def test_a_job_whose_heartbeat_is_recent_is_left_alone(synthetic_project, env):
    uri, client, settings, files = env
    run_id, version = stopped_job(client, settings.experiment_name, settings.model_name, 30, files)
    done = settle(synthetic_project, uri)
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["settled"] == []
    found = client.get_model_version(settings.model_name, version)
    assert found.tags[VALIDATION_STATUS] == "pending"
    assert client.get_registered_model(settings.model_name).aliases[CHALLENGER] == version
    assert client.get_run(run_id).info.status == "RUNNING"
    assert json.loads(done.stdout.strip().splitlines()[-1])["settled"] == []


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_a_job_settled_while_alive_never_judges_or_crowns_its_version(synthetic_project, env):
    """A training cut off from the store for ten minutes is settled by another machine while it
    judges its version; when it comes back it must not write a verdict or move `champion`."""
    uri, client, settings, _ = env
    folder = env[3].parent / "gate"
    folder.mkdir()
    environ = {**os.environ, "PYTHONPATH": str(synthetic_project), "MLFLOW_TRACKING_URI": uri}
    job = subprocess.Popen(
        [sys.executable, str(PAUSED_GATE), str(folder), "train", "--env", "dev",
         "--problem", PROBLEM, "--set", "params.max_iter=20"],
        cwd=synthetic_project, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(folder / "paused", job)
        (run,) = client.search_runs(
            [client.get_experiment_by_name(settings.experiment_name).experiment_id],
            "attributes.status = 'RUNNING'",
        )
        # as another machine sees a job whose beats stopped reaching the store 12 minutes ago
        silent = heartbeat.beat(time.time() - heartbeat.STALE_AFTER_S - 120)
        for key, value in {**ELSEWHERE, **silent}.items():
            client.set_tag(run.info.run_id, key, value)
        done = settle(synthetic_project, uri)
        assert done.returncode == 0, done.stderr
        assert last_json(done.stdout)["settled"][0].startswith("version 1:")
        (folder / "go").touch()
        _, stderr = job.communicate(timeout=300)
    finally:
        job.kill()
    assert job.returncode == 10, stderr
    assert "Traceback" not in stderr
    assert "was settled while this job was judging it" in stderr
    assert "the champion is unchanged" in stderr
    version = client.get_model_version(settings.model_name, "1")
    assert version.tags[VALIDATION_STATUS] == "failed"
    assert version.tags[SETTLED].startswith("no verdict: its run")
    assert "gate.attempt" not in version.tags  # no verdict of the job's was written
    aliases = client.get_registered_model(settings.model_name).aliases
    assert CHAMPION not in aliases and CHALLENGER not in aliases
    assert client.get_run(run.info.run_id).info.status != "FINISHED"
