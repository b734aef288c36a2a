"""The release workflows played event by event as GitHub would (tests/ci/github.py), in a fork
of the project, against two real `mlflow server`s standing for the staging and prod secrets
(tests/ci/events.py): a release tag, a release the gate refuses for one problem, a pre-release
tag, a release tag in a repository without secrets, a schedule and a manual retraining. After
each, the stores are read: versions, aliases, verdicts, lineage tags. The branches and pull
requests: tests/ci/test_workflow_events.py (its own fork and servers, so the two files run on
two workers).
"""

from __future__ import annotations

import re

import pytest

from tests.ci.events import (
    DEFAULT,
    SECOND,
    Played,
    assert_no_file_names_a_server,
    assert_succeeded,
    fork_with_servers,
    steps_of,
    uploaded_files,
    versions,
)
from tests.ci.github import git
from tests.conftest import commit_all

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Played:
    with fork_with_servers(tmp_path_factory.mktemp("releases")) as played:
        play_release_events(played)
        yield played


def play_release_events(played: Played) -> None:
    origin, commits, event = played.origin, played.commits, played.event
    main = commits["main"]
    git(origin, "tag", "v1.0.0", "main")
    event("release", ["release.yml", "ci.yml"], name="push", ref="refs/tags/v1.0.0", sha=main)
    # v1.1.0 stops the default problem's boosting after one tree in prod: the gate refuses it
    overlay = origin / "problems" / DEFAULT / "environments" / "prod.yaml"
    overlay.write_text(overlay.read_text() + "params:\n  max_iter: 1\n")
    commit_all(origin, "a worse model for the default problem")
    commits["refused"] = git(origin, "rev-parse", "HEAD")
    git(origin, "tag", "v1.1.0")
    event(
        "refused release",
        ["release.yml"],
        name="push",
        ref="refs/tags/v1.1.0",
        sha=commits["refused"],
    )
    git(origin, "tag", "v1.2.0-rc1")
    event(
        "pre-release",
        ["release.yml"],
        name="push",
        ref="refs/tags/v1.2.0-rc1",
        sha=commits["refused"],
    )
    # a repository whose secrets are not set yet (a new fork of the template) pushes a tag
    event(
        "release without secrets",
        ["release.yml"],
        name="push",
        ref="refs/tags/v1.0.0",
        sha=main,
        secrets={},
        environments={},
    )
    event(
        "schedule",
        ["scheduled.yml"],
        name="schedule",
        ref="refs/heads/main",
        sha=commits["refused"],
    )
    event(
        "manual retraining",
        ["scheduled.yml"],
        name="workflow_dispatch",
        ref="refs/heads/main",
        sha=commits["refused"],
        inputs={"retrain": True, "batch_query": ""},
    )


def test_a_release_tag_trains_prod_and_says_what_it_promoted(played):
    release, branches = played.runs["release"]
    assert not branches.started  # ci.yml takes branches only
    for problem in ("", SECOND):
        assert_succeeded(release.job("prod", problem=problem))
    verdict = release.job("verdict")
    assert_succeeded(verdict)
    assert "## Release v1.0.0: 2 promoted, 0 refused" in verdict.summary
    prod = played.stores["release"]["prod"]
    for model in (f"{DEFAULT}_prod", f"{SECOND}_prod"):
        assert prod[model]["aliases"] == {"champion": "1"}
        tags = versions(prod, model)["1"]
        assert (tags["validation_status"], tags["git.tag"]) == ("passed", "v1.0.0")
        assert tags["run:git.branch"] == ""  # a tag is no branch
        assert tags["git.commit"] == played.commits["main"]


def test_a_refused_release_fails_its_job_keeps_the_champion_and_says_so_once(played):
    [release] = played.runs["refused release"]
    refused = release.job("prod", problem="")
    assert refused.result == "failure"
    training = refused.step("retrain prod on the full data; the gate decides the promotion")
    assert training.exit_code == 2 and "Error 5" in training.log  # as docs/ci-cd.md says
    assert steps_of(refused)["registered model after the release"] == "success"
    assert_succeeded(release.job("prod", problem=SECOND))
    verdict = release.job("verdict")
    assert "## Release v1.1.0: 1 promoted, 1 refused" in verdict.summary
    assert re.search(rf"\| {DEFAULT} \| `{DEFAULT}_prod` \| 2 \| refused \| 1 \|", verdict.summary)
    prod = played.stores["refused release"]["prod"]
    assert prod[f"{DEFAULT}_prod"]["aliases"] == {"champion": "1"}
    assert versions(prod, f"{DEFAULT}_prod")["2"]["validation_status"] == "failed"
    assert prod[f"{SECOND}_prod"]["aliases"] == {"champion": "2"}
    [pre_release] = played.runs["pre-release"]
    assert not pre_release.started
    assert played.stores["pre-release"] == played.stores["refused release"]


def test_without_the_prod_secret_a_release_fails_once_and_clearly(played):
    [release] = played.runs["release without secrets"]
    for problem in ("", SECOND):
        job = release.job("prod", problem=problem)
        failed = [step for step in job.steps if step.outcome == "failure"]
        assert [step.name for step in failed] == [
            "retrain prod on the full data; the gate decides the promotion"
        ]
        assert failed[0].exit_code == 2 and "MLFLOW_TRACKING_URI is not set" in failed[0].log
        assert steps_of(job)["registered model after the release"] == "skipped"  # no exit 9
    assert "0 promoted, 0 refused" in release.job("verdict").summary
    assert played.stores["release without secrets"] == played.stores["pre-release"]


def test_the_schedule_monitors_with_the_champions_release_not_the_newest_tag(played):
    [run] = played.runs["schedule"]
    monitor = run.job("monitor")
    assert_succeeded(monitor)
    assert (monitor.outputs["tag"], monitor.outputs["drift"]) == ("v1.0.0", "false")
    assert "checked out v1.0.0" in monitor.step("check out the champion's release").log
    assert run.job("retrain").result == "skipped"  # no drift
    before, after = played.stores["refused release"]["prod"], played.stores["schedule"]["prod"]
    for model in before:  # no training: the same versions and aliases
        assert after[model]["aliases"] == before[model]["aliases"]
        assert after[model]["versions"].keys() == before[model]["versions"].keys()


def test_a_manual_retraining_retrains_the_champions_release(played):
    [run] = played.runs["manual retraining"]
    assert_succeeded(run.job("retrain"))
    prod = played.stores["manual retraining"]["prod"]
    assert prod[f"{DEFAULT}_prod"]["aliases"] == {"champion": "3"}
    tags = versions(prod, f"{DEFAULT}_prod")["3"]
    assert (tags["git.commit"], tags["git.tag"]) == (played.commits["main"], "v1.0.0")
    assert tags["run:git.branch"] == ""  # the default branch's event, another commit


def test_no_uploaded_artifact_names_a_server(played):
    assert any(path.name == "prod-summary.md" for path in uploaded_files(played))
    assert_no_file_names_a_server(played)
