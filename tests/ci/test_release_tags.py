"""Which tag trains prod: a release v1.2.3 does, a pre-release v1.2.3-rc1 never does, neither on
its push (release.yml) nor as the code the scheduled retraining checks out (`make
latest-release`: the release prod's champion was trained from, so never a refused one).
tests/ci/test_workflow_releases.py runs it against real servers after real releases."""

import re

import pytest
from mlflow import MlflowClient

from ml_project.releases import choose_release
from tests.ci.workflows import load_workflow, run_make
from tests.conftest import empty_store, make_project_copy


@pytest.mark.parametrize(
    ("recorded", "at_commit", "expected"),
    [
        ("v1.0.2", ["v1.0.2", "v1.0.2-rc1"], "v1.0.2"),
        ("", ["v1.10.0", "v1.9.0"], "v1.10.0"),  # trained from a branch, later tagged
        ("v1.0.2-rc1", ["v1.0.2", "v1.0.2-rc1"], "v1.0.2"),  # the candidate became the release
        ("v1.0.2-rc1", ["v1.0.2-rc1"], ""),  # a candidate never is
        ("v1.0.2", [], ""),  # the tag was moved to other code, or deleted
        ("", [], ""),  # a branch's model
    ],
)
def test_the_release_is_a_tag_naming_the_champions_commit_never_a_candidate(
    recorded, at_commit, expected
):
    tag, reason = choose_release(recorded, at_commit)
    assert tag == expected
    assert bool(reason) != bool(tag)  # no tag: a reason why


def test_without_a_champion_latest_release_says_so_and_exits_cleanly(tmp_path):
    project = make_project_copy(tmp_path / "project")
    uri = empty_store(tmp_path, "prod.db")
    MlflowClient(uri).search_experiments()  # an empty store, as before the first release
    output = tmp_path / "github-output"
    environment = {"MLFLOW_TRACKING_URI": uri, "GITHUB_OUTPUT": str(output), "CI": "true"}
    done = run_make("-s", "latest-release", cwd=project, env=environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    assert re.search(r"No release to retrain from: \w+_prod has no champion", done.stderr)
    assert output.read_text() == "tag=\n"  # the scheduled jobs then do nothing


def test_in_ci_without_the_prod_secret_latest_release_fails_once_and_clearly(tmp_path):
    project = make_project_copy(tmp_path / "project")
    done = run_make(
        "-s", "latest-release", cwd=project, env={"MLFLOW_TRACKING_URI": None, "CI": "1"}
    )
    assert done.returncode == 2 and done.stderr.count("MLFLOW_TRACKING_URI is not set") == 1


def test_a_pre_release_tag_does_not_start_a_prod_training():
    tags = load_workflow("release.yml")["on"]["push"]["tags"]
    assert tags == ["v*", "!v*-*"]


def test_the_scheduled_jobs_that_read_prod_run_in_the_production_environment():
    scheduled = load_workflow("scheduled.yml")
    for job_id, job in scheduled["jobs"].items():
        commands = " ".join(step.get("run", "") for step in job["steps"])
        if "ENV=prod" in commands or "release-prod" in commands or "latest-release" in commands:
            assert job.get("environment") == "production", job_id
