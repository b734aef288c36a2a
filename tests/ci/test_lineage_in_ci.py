"""What a CI checkout records as git.branch and git.tag: GitHub's checkouts are detached, so the
branch comes from GitHub's variables, and the tag is the release's, never its release candidate."""

import subprocess

import pytest

from ml_project import lineage
from tests.unit.test_lineage import repo_with_a_commit


def repo_at(path):
    """A one-commit repository, checked out detached at its commit as CI checks out."""
    repo_with_a_commit(path)
    head = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["git", "-C", str(path), "checkout", "-q", "--detach", head], check=True)
    return path, head


@pytest.mark.parametrize(
    ("variables", "branch"),
    [
        ({"GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "feature/x"}, "feature/x"),  # push
        ({"GITHUB_HEAD_REF": "fix", "GITHUB_REF_NAME": "7/merge", "GITHUB_SHA": "b" * 40}, "fix"),
        ({"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.0.0"}, ""),  # a tag is no branch
        ({}, ""),  # a detached laptop checkout: nothing says
    ],
)
def test_a_detached_checkout_takes_its_branch_from_githubs_variables(tmp_path, variables, branch):
    repo, head = repo_at(tmp_path / "repo")
    info = lineage.git_info(repo, environ={"GITHUB_SHA": head, **variables})
    assert (info.commit, info.branch, info.source) == (head, branch, "git")


def test_the_pushed_branch_is_not_claimed_for_another_commit(tmp_path):
    # the scheduled retraining checks out an older release on the default branch's event
    repo, head = repo_at(tmp_path / "repo")
    environ = {"GITHUB_SHA": "c" * 40, "GITHUB_REF_TYPE": "branch", "GITHUB_REF_NAME": "main"}
    assert lineage.git_info(repo, environ=environ).branch == ""


def test_the_tag_is_the_release_over_its_candidate_and_the_pushed_one_first(tmp_path):
    repo, head = repo_at(tmp_path / "repo")
    for tag in ("v1.2.0-rc1", "v1.2.0", "v1.10.0-rc1"):
        subprocess.run(["git", "-C", str(repo), "tag", tag], check=True)
    assert lineage.git_info(repo, environ={}).tag == "v1.2.0"
    pushed = {"GITHUB_SHA": head, "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v1.10.0-rc1"}
    assert lineage.git_info(repo, environ=pushed).tag == "v1.10.0-rc1"


def test_a_commit_with_only_pre_release_tags_records_the_highest(tmp_path):
    repo, _ = repo_at(tmp_path / "repo")
    for tag in ("v2.0.0-rc1", "v2.0.0-rc2"):
        subprocess.run(["git", "-C", str(repo), "tag", tag], check=True)
    assert lineage.git_info(repo, environ={}).tag == "v2.0.0-rc2"
