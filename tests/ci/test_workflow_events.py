"""The workflows played event by event as GitHub would (tests/ci/github.py), in a fork of the
project, against two real `mlflow server`s standing for the staging and prod secrets
(tests/ci/events.py): a scheduled run before any release, a push, a pull request from the same
repository and one from a fork (no secrets). After each, the stores are read: versions, aliases,
verdicts, lineage tags (the run's git.branch too). The release tags, the schedule after a
release and a manual retraining: tests/ci/test_workflow_releases.py (its own fork and servers, so
the two files run on two workers).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.ci.events import (
    DEFAULT,
    SECOND,
    Played,
    assert_no_file_names_a_server,
    assert_succeeded,
    commit_on,
    fork_with_servers,
    pull_request,
    steps_of,
    uploaded_files,
    versions,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Played:
    with fork_with_servers(tmp_path_factory.mktemp("events")) as played:
        play_branch_events(played)
        yield played


def play_branch_events(played: Played) -> None:
    origin, commits, event = played.origin, played.commits, played.event
    main = commits["main"]
    event("first schedule", ["scheduled.yml"], name="schedule", ref="refs/heads/main", sha=main)
    commits["feature"] = commit_on(origin, "feature", "docs/note.md", "a change\n")
    event("push", ["ci.yml"], name="push", ref="refs/heads/feature", sha=commits["feature"])
    merge, payload = pull_request(origin, 7, commits["feature"], "feature", "team/project")
    event(
        "pull request",
        ["ci.yml"],
        name="pull_request",
        ref="refs/pull/7/merge",
        sha=merge,
        head_ref="feature",
        payload=payload,
    )
    commits["fork"] = commit_on(origin, "their-idea", "docs/idea.md", "an idea\n")
    merge, payload = pull_request(origin, 8, commits["fork"], "their-idea", "someone/project")
    event(
        "fork pull request",
        ["ci.yml"],
        name="pull_request",
        ref="refs/pull/8/merge",
        sha=merge,
        head_ref="their-idea",
        payload=payload,
        secrets={},
        environments={},
    )
    played.laptop = origin.parent / "laptop" / "ci-store"  # the fork's store, on a laptop
    artifact = played.runs["fork pull request"][0].artifacts["staging-mlflow-store-default"]
    shutil.copytree(artifact, played.laptop)
    played.relocated = subprocess.run(
        [sys.executable, ".ci/relocate_store.py", str(played.laptop)],  # the docs' one line
        cwd=origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_before_any_release_the_schedule_says_so_and_does_nothing(played):
    [run] = played.runs["first schedule"]
    monitor = run.job("monitor")
    assert_succeeded(monitor)
    assert monitor.outputs["tag"] == ""
    assert (
        "No release to retrain from"
        in monitor.step("the release the prod champion was trained from").log
    )
    after = monitor.steps[
        [s.name for s in monitor.steps].index("the release the prod champion was trained from")
        + 1 :
    ]
    assert after and all(step.outcome == "skipped" for step in after)
    assert run.job("retrain").result == "skipped"
    assert played.stores["first schedule"]["prod"] == {}


def test_a_push_trains_every_problem_in_staging_with_its_branch(played):
    [run] = played.runs["push"]
    assert run.job("checks").result == "not-run"  # CI's own lint and tests
    staging = played.stores["push"]["staging"]
    for problem in ("", SECOND):
        job = run.job("staging", problem=problem)
        assert_succeeded(job)
        assert steps_of(job)["reproduce the version just trained, bit for bit"] == "success"
        assert "Quality gate: passed" in job.summary
        skipped = {s.name.split("@")[0] for s in job.steps if s.kind == "skipped-action"}
        assert skipped == {"actions/setup-python", "actions/cache"}
    for model in (f"{DEFAULT}_staging", f"{SECOND}_staging"):
        assert staging[model]["aliases"] == {"champion": "1"}
        tags = versions(staging, model)["1"]
        assert tags["validation_status"] == "passed"
        assert (tags["git.commit"], tags["run:git.branch"]) == (
            played.commits["feature"],
            "feature",
        )
    assert "staging-mlflow-store-default" not in run.artifacts  # the server holds it
    assert played.stores["push"]["prod"] == {}


def test_a_pull_request_of_the_repository_is_not_trained_twice(played):
    [run] = played.runs["pull request"]
    assert run.job("checks").result == "skipped" and run.job("staging").result == "skipped"
    assert played.stores["pull request"] == played.stores["push"]


def test_a_fork_pull_request_trains_in_its_own_store_that_opens_on_a_laptop(played, monkeypatch):
    [run] = played.runs["fork pull request"]
    for problem in ("", SECOND):
        assert_succeeded(run.job("staging", problem=problem))
    assert played.stores["fork pull request"] == played.stores["pull request"]  # no secret
    assert "recorded paths moved" in played.relocated
    database = played.laptop / "mlflow.db"
    runner_store = played.origin.parent / "runner" / "outputs" / "ci-store"
    assert str(runner_store) not in database.read_bytes().decode("latin-1")
    uri = f"sqlite:///{database}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version(f"{DEFAULT}_staging", "1")
    assert version.tags["git.commit"] == played.commits["fork"]
    assert client.get_run(version.run_id).data.tags["git.branch"] == "their-idea"
    assert client.list_artifacts(version.run_id)  # the run's files, here
    uploaded = run.artifacts["staging-mlflow-store-default"]  # as uploaded: the runner's paths
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{uploaded / 'mlflow.db'}")
    with pytest.raises(MlflowException):
        mlflow.pyfunc.load_model(f"models:/{DEFAULT}_staging/1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the relocated copy (the registry's too)
    model = mlflow.pyfunc.load_model(f"models:/{DEFAULT}_staging/1")
    assert model.metadata.run_id == version.run_id


def test_no_uploaded_artifact_names_a_server(played):
    uploaded = uploaded_files(played)
    assert any(path.name == "mlflow.db" for path in uploaded)  # the fork's store
    assert_no_file_names_a_server(played)


def test_the_fork_setup_is_what_the_workflows_train():
    # the matrix edit make_fork does must keep matching the workflows' text
    for name in ("ci.yml", "release.yml"):
        text = (Path(__file__).parents[2] / ".github" / "workflows" / name).read_text()
        assert 'problem: ["", storms]' in text
        assert yaml.safe_load(text)
