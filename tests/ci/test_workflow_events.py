"""The three workflows played event by event as GitHub would (tests/ci/github.py), in a clone
of the project, against two real `mlflow server`s standing for the staging and prod secrets
(the repository's and the `production` environment's): a scheduled run before any release, a
push, a pull request from the same repository and one from a fork (no secrets), a release tag,
a release the gate refuses for one problem, a pre-release tag, a release tag in a repository
without secrets, a schedule and a manual retraining. After each, the stores are read: versions,
aliases, verdicts, lineage tags (the run's git.branch too).

The project is a fork of the template with two small synthetic problems (the default and a
second one in the matrix, in place of the demos), and prod's sample set to staging's, so the
nine trainings stay cheap. `uses:` steps other than checkout and the artifacts are skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.ci.github import Event, Run, Runner, git
from tests.conftest import commit_all, make_project_copy
from tests.integration.tracking_server import start_tracking_server
from tests.preforked import preloaded_server
from tests.synthetic import write_problem

pytestmark = pytest.mark.integration

DEFAULT, SECOND = "synthetic_binary", "synthetic_regression"
SKIPPED_ACTIONS = {"actions/setup-python", "actions/cache", "actions/setup-java"}


@dataclass
class Played:
    origin: Path
    runs: dict[str, list[Run]]
    stores: dict[str, dict[str, dict]]  # event -> {"staging": ..., "prod": ...}
    commits: dict[str, str]
    addresses: list[str]
    laptop: Path
    relocated: str


def make_fork(origin: Path) -> None:
    """The template as a team forks it: its own two problems in the matrices, prod sampled as
    staging is (the tests' budget), prod's row minimums scaled to the small tables."""
    write_problem(origin, "binary")
    write_problem(origin, "regression")
    base = origin / "environments" / "base.yaml"
    base.write_text(re.sub(r"^problem: \w+", f"problem: {DEFAULT}", base.read_text(), flags=re.M))
    for problem in (DEFAULT, SECOND):
        (origin / "problems" / problem / "environments" / "prod.yaml").write_text(
            "data:\n  sample_fraction: 0.5\n"
            "gate:\n  min_test_rows: 100\n"
            "monitor:\n  min_rows: 500\n"
        )
    for name in ("ci.yml", "release.yml"):
        path = origin / ".github" / "workflows" / name
        path.write_text(
            path.read_text().replace('problem: ["", storms]', f'problem: ["", {SECOND}]')
        )
    commit_all(origin, "our fork: our problems")


def snapshot(url: str) -> dict[str, dict]:
    """model -> {"aliases": {alias: version}, "versions": {version: tags}}; a version's tags
    hold its run's git.branch as `run:git.branch` (the branch is a run tag)."""
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    found = {}
    for model in client.search_registered_models():
        versions = {}
        for version in client.search_model_versions(f"name='{model.name}'"):
            branch = client.get_run(version.run_id).data.tags.get("git.branch", "")
            versions[version.version] = {**version.tags, "run:git.branch": branch}
        found[model.name] = {"aliases": dict(model.aliases), "versions": versions}
    return found


def commit_on(origin: Path, branch: str, path: str, text: str) -> str:
    git(origin, "checkout", "-q", "-B", branch)
    (origin / path).write_text(text)
    commit_all(origin, f"a change on {branch}")
    sha = git(origin, "rev-parse", "HEAD")
    git(origin, "checkout", "-q", "main")
    return sha


def pull_request(origin: Path, number: int, head: str, branch: str, repo: str) -> tuple[str, dict]:
    """GitHub's merge commit refs/pull/N/merge and the event's payload."""
    main = git(origin, "rev-parse", "main")
    merge = git(origin, "commit-tree", f"{head}^{{tree}}", "-p", main, "-p", head, "-m", "merge")
    git(origin, "update-ref", f"refs/pull/{number}/merge", merge)
    payload = {
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": head, "ref": branch, "repo": {"full_name": repo}},
            "base": {"ref": "main", "repo": {"full_name": "team/project"}},
        },
    }
    return merge, payload


@pytest.fixture(scope="module")
def played(tmp_path_factory) -> Played:
    root = tmp_path_factory.mktemp("events")
    origin = make_project_copy(root / "origin")
    make_fork(origin)
    staging = start_tracking_server(root / "staging-server")
    prod = start_tracking_server(root / "prod-server")
    try:
        yield play_events(root, origin, staging.url, prod.url)
    finally:
        staging.stop()
        prod.stop()


def play_events(root: Path, origin: Path, staging: str, prod: str) -> Played:
    runner = Runner(origin, root / "runner", bin_dir=preloaded_server().bin_dir(), scratch=root)
    secrets = {"MLFLOW_TRACKING_URI": staging}
    environments = {"production": {"MLFLOW_TRACKING_URI": prod}}
    runs: dict[str, list[Run]] = {}
    stores: dict[str, dict] = {}
    commits = {"main": git(origin, "rev-parse", "main")}

    def event(label: str, workflows: list[str], **fields) -> None:
        fields.setdefault("secrets", secrets)
        fields.setdefault("environments", environments)
        runs[label] = [runner.play(name, Event(**fields)) for name in workflows]
        stores[label] = {"staging": snapshot(staging), "prod": snapshot(prod)}

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
    laptop = root / "laptop" / "ci-store"  # the fork's store, unzipped on a laptop
    artifact = runs["fork pull request"][0].artifacts["staging-mlflow-store-default"]
    shutil.copytree(artifact, laptop)
    relocated = subprocess.run(
        [sys.executable, ".ci/relocate_store.py", str(laptop)],  # the docs' one line
        cwd=origin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
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
    addresses = [urlsplit(url).netloc for url in (staging, prod)]
    return Played(origin, runs, stores, commits, addresses, laptop, relocated)


def steps_of(job) -> dict[str, str]:
    return {step.name: step.outcome for step in job.steps}


def assert_succeeded(job) -> None:
    failed = [step for step in job.steps if step.outcome == "failure"]
    assert job.result == "success", "\n".join(f"{s.name}: {s.log[-3000:]}" for s in failed)


def versions(store: dict, model: str) -> dict[str, dict]:
    return store.get(model, {}).get("versions", {})


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
    artifacts = [
        path
        for runs in played.runs.values()
        for run in runs
        for folder in run.artifacts.values()
        for path in folder.rglob("*")
        if path.is_file()
    ]
    assert any(path.name == "prod-summary.md" for path in artifacts)
    for path in artifacts:
        content = path.read_bytes()
        for address in played.addresses:
            assert address.encode() not in content, path


def test_the_fork_setup_is_what_the_workflows_train():
    # the matrix edit make_fork does must keep matching the workflows' text
    for name in ("ci.yml", "release.yml"):
        text = (Path(__file__).parents[2] / ".github" / "workflows" / name).read_text()
        assert 'problem: ["", storms]' in text
        assert yaml.safe_load(text)
