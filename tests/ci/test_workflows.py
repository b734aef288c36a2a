"""The workflows do what the README says: pull requests train in staging, tags retrain prod,
and every step is a make target or an `ml-project` command that exists, so a laptop can run it."""

from __future__ import annotations

import re

import pytest
import yaml

from ml_project.cli import cli
from tests.ci.workflows import (
    ROOT,
    command_words,
    load_workflow,
    make_targets_called,
    makefile_recipes,
    makefile_targets,
    makefile_variable,
    run_lines,
    steps,
    workflow_names,
)

PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def all_run_commands() -> list[tuple[str, str, str]]:
    return [
        (name, job_id, line)
        for name in workflow_names()
        for job_id, _, step in steps(load_workflow(name))
        if "run" in step
        for line in run_lines(step["run"])
    ]


def jobs_running(workflow: dict, target: str) -> list[tuple[str, dict]]:
    """Jobs with a step `make TARGET ...`."""
    found = []
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            lines = run_lines(step.get("run", ""))
            if any(target in make_targets_called(command_words(line)) for line in lines):
                found.append((job_id, job))
                break
    return found


def step_running(job: dict, target: str) -> dict:
    return next(
        step
        for step in job["steps"]
        if any(
            target in make_targets_called(command_words(line))
            for line in run_lines(step.get("run", ""))
        )
    )


def makes(job: dict) -> list[str]:
    return [
        target
        for step in job.get("steps", [])
        for line in run_lines(step.get("run", ""))
        for target in make_targets_called(command_words(line))
    ]


def concurrency_of(workflow: dict, job: dict) -> dict:
    value = job.get("concurrency", workflow.get("concurrency"))
    return {"group": value, "cancel-in-progress": False} if isinstance(value, str) else value


def test_the_three_workflows_exist():
    assert workflow_names() == ["ci.yml", "release.yml", "scheduled.yml"]


@pytest.mark.parametrize(
    "workflow, job, command", all_run_commands(), ids=lambda value: str(value)[:40]
)
def test_every_run_step_is_a_make_target_or_an_ml_project_command(workflow, job, command):
    words = command_words(command)
    assert words, f"{workflow} {job}: empty command {command!r}"
    if words[0] == "make":
        targets = make_targets_called(words)
        assert targets, f"{workflow} {job}: `{command}` names no target"
        assert set(targets) <= set(makefile_targets()), f"{workflow} {job}: `{command}`"
    else:
        assert words[0].endswith("ml-project"), f"{workflow} {job}: `{command}` is neither"
        assert words[1] in cli.commands, f"{workflow} {job}: no `ml-project {words[1]}`"


def test_the_make_targets_ci_calls_are_documented_for_make_help():
    targets = makefile_targets()
    called = {
        target
        for _, _, command in all_run_commands()
        for target in make_targets_called(command_words(command))
    }
    assert called and all(targets[target] for target in called)


def ml_project_commands_in_the_makefile() -> list[str]:
    recipes = "\n".join(makefile_recipes().values())
    return sorted(set(re.findall(r"ml-project\s+([a-z][a-z-]*)", recipes)))


@pytest.mark.parametrize("command", ml_project_commands_in_the_makefile())
def test_every_ml_project_command_the_makefile_calls_exists(command):
    assert command in cli.commands


@pytest.mark.parametrize("name", workflow_names())
def test_permissions_are_read_only(name):
    workflow = load_workflow(name)
    assert workflow["permissions"] == {"contents": "read"}
    for job in workflow["jobs"].values():
        assert set(job.get("permissions", {}).values()) <= {"read", "none"}


@pytest.mark.parametrize("name", workflow_names())
def test_every_job_has_a_timeout(name):
    for job_id, job in load_workflow(name)["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: job {job_id}"
        assert 0 < job["timeout-minutes"] <= 120, f"{name}: job {job_id}"


@pytest.mark.parametrize("name", workflow_names())
def test_actions_are_pinned_to_release_tags(name):
    uses = [step["uses"] for _, _, step in steps(load_workflow(name)) if "uses" in step]
    assert uses
    for action in uses:
        assert PINNED.match(action), f"{name}: {action} is not pinned to a release tag or SHA"


@pytest.mark.parametrize("name", workflow_names())
def test_python_is_the_locked_one_and_pip_is_cached_on_the_lock(name):
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    locked_python = next(
        item.split("=", 1)[1]
        for item in conda["dependencies"]
        if isinstance(item, str) and item.startswith("python=")
    )
    for job_id, _, step in steps(load_workflow(name)):
        if step.get("uses", "").startswith("actions/setup-python@"):
            assert step["with"]["python-version"] == locked_python, job_id
            assert step["with"]["cache"] == "pip", job_id
            assert step["with"]["cache-dependency-path"] == "requirements.lock", job_id
    for job_id, job in load_workflow(name)["jobs"].items():
        if "install" in makes(job):
            uses = [step.get("uses", "") for step in job["steps"]]
            assert any(use.startswith("actions/setup-python@") for use in uses), job_id


def test_pull_requests_and_branches_train_in_staging():
    ci = load_workflow("ci.yml")
    assert "pull_request" in ci["on"]
    assert ci["on"]["push"] == {"branches": ["**"]}  # branches only: tags run release.yml
    [(job_id, job)] = jobs_running(ci, "ci-staging")
    checks = ci["jobs"][job["needs"]]
    assert {"lint", "test-fast", "check-workflows"} <= set(makes(checks))
    # the staging job gets the server from secrets; a fork's pull request has none
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert "environment" not in job
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert "github.event.pull_request.head.sha" in checkout["with"]["ref"]
    assert makes(job).index("ci-staging") < makes(job).index("ci-reproduce")
    assert "!cancelled()" in step_running(job, "ci-summary")["if"]


def test_without_a_server_the_embedded_store_is_uploaded():
    ci = load_workflow("ci.yml")
    [(_, job)] = jobs_running(ci, "ci-staging")
    store = makefile_variable("CI_STORE").replace("$(OUT)", makefile_variable("OUT"))
    uploads = [
        step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    [upload] = [step for step in uploads if step["with"]["path"].rstrip("/") == store]
    assert "env.MLFLOW_TRACKING_URI == ''" in upload["if"]


def test_release_tags_retrain_prod_in_the_production_environment():
    release = load_workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    [(job_id, job)] = jobs_running(release, "release-prod")
    assert job["environment"] == "production"
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    concurrency = concurrency_of(release, job)
    assert concurrency["group"] and concurrency["cancel-in-progress"] is False
    assert {"lint", "test-fast"} <= set(makes(release["jobs"][job["needs"]]))
    assert "!cancelled()" in step_running(job, "ci-summary")["if"]
    assert not jobs_running(release, "ci-staging")


def test_scheduled_retraining_runs_the_newest_release_like_a_release():
    scheduled = load_workflow("scheduled.yml")
    assert scheduled["on"]["schedule"][0]["cron"]
    assert "workflow_dispatch" in scheduled["on"]
    [(job_id, job)] = jobs_running(scheduled, "release-prod")
    assert job["environment"] == "production"
    [(tag_job_id, _)] = jobs_running(scheduled, "latest-release")
    [(monitor_job_id, monitor_job)] = jobs_running(scheduled, "ci-monitor")
    assert job["needs"] == [tag_job_id, monitor_job_id]
    assert job["steps"][0]["with"]["ref"] == f"${{{{ needs.{tag_job_id}.outputs.tag }}}}"
    # retraining happens on drift (or when forced by hand), never on a failed drift check alone
    assert f"needs.{monitor_job_id}.outputs.drift == 'true'" in job["if"]
    assert "inputs.retrain" in job["if"]
    assert scheduled["on"]["workflow_dispatch"]["inputs"]["retrain"]["type"] == "boolean"
    release = load_workflow("release.yml")
    [(_, release_job)] = jobs_running(release, "release-prod")
    same_group = concurrency_of(scheduled, job)["group"]
    assert same_group == concurrency_of(release, release_job)["group"]


def test_scheduled_scoring_runs_the_champion_then_the_drift_check():
    scheduled = load_workflow("scheduled.yml")
    [(job_id, job)] = jobs_running(scheduled, "ci-monitor")
    [(tag_job_id, _)] = jobs_running(scheduled, "latest-release")
    assert job["needs"] == tag_job_id
    assert job["steps"][0]["with"]["ref"] == f"${{{{ needs.{tag_job_id}.outputs.tag }}}}"
    order = makes(job)
    assert order.index("batch") < order.index("score") < order.index("ci-monitor")
    drift_step = step_running(job, "ci-monitor")
    assert job["outputs"]["drift"] == f"${{{{ steps.{drift_step['id']}.outputs.drift }}}}"


def test_dependabot_updates_actions_and_pip():
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    ecosystems = {update["package-ecosystem"]: update for update in config["updates"]}
    assert set(ecosystems) == {"github-actions", "pip"}
    assert all(update["directory"] == "/" for update in ecosystems.values())


def test_ci_run_calls_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert "make test" in [line.strip() for line in script.splitlines()]
    assert "make test" in (ROOT / "README.md").read_text()
