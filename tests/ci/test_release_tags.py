"""Which tag trains prod: a release v1.2.3 does, a pre-release v1.2.3-rc1 never does, neither on
its push (release.yml) nor as the code the scheduled retraining checks out (make latest-release)."""

from pathlib import Path

import pytest

from tests.ci.workflows import ROOT, load_workflow, run_make
from tests.conftest import git


def tagged_repo(folder: Path, tags: list[str]) -> Path:
    """A repository holding this project's Makefile, one commit, the given tags."""
    folder.mkdir()
    git(folder.parent, "init", "-q", "-b", "main", str(folder))
    git(folder, "config", "user.email", "tests@example.invalid")
    git(folder, "config", "user.name", "tests")
    (folder / "Makefile").write_text((ROOT / "Makefile").read_text())
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "release")
    for tag in tags:
        git(folder, "tag", tag)
    return folder


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["v1.0.1", "v1.0.2-rc1", "v1.0.2"], "v1.0.2"),
        (["v1.0.1", "v1.0.2-rc1"], "v1.0.1"),
        (["v1.9.0", "v1.10.0"], "v1.10.0"),
        (["v2.0.0-beta"], ""),
    ],
)
def test_latest_release_is_the_newest_tag_that_is_not_a_pre_release(tmp_path, tags, expected):
    repo = tagged_repo(tmp_path / "repo", tags)
    output = tmp_path / "github-output"
    done = run_make("-s", "latest-release", cwd=repo, env={"GITHUB_OUTPUT": str(output)})
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if not line.startswith("make")]
    assert printed == ([expected] if expected else [])
    if expected:
        assert output.read_text() == f"tag={expected}\n"
    else:
        assert "nothing to retrain" in done.stderr and not output.exists()


def test_a_pre_release_tag_does_not_start_a_prod_training():
    tags = load_workflow("release.yml")["on"]["push"]["tags"]
    assert tags == ["v*", "!v*-*"]


def test_the_scheduled_jobs_that_read_prod_run_in_the_production_environment():
    scheduled = load_workflow("scheduled.yml")
    for job_id, job in scheduled["jobs"].items():
        commands = " ".join(step.get("run", "") for step in job["steps"])
        if "ENV=prod" in commands or "release-prod" in commands:
            assert job.get("environment") == "production", job_id
