"""The workflows do what docs/ci-cd.md says: pull requests train in staging, tags retrain prod,
and every step is a make target or an `ml-project` command that exists, so a laptop can run it."""

from __future__ import annotations

import fnmatch
import json
import re
import sys

import pytest
import yaml

from ml_project.cli import cli
from tests.ci.workflows import (
    ROOT,
    WORKFLOWS,
    command_words,
    dry_run,
    load_workflow,
    make_targets_called,
    makefile_recipes,
    makefile_targets,
    makefile_variable,
    matrix_value,
    run_lines,
    run_make,
    steps,
    workflow_names,
)


def ci_problems() -> list[str]:
    """What CI trains: ci.yml's matrix (the template's: the default problem "" and the second
    example; a project made from it lists its own)."""
    jobs = load_workflow("ci.yml")["jobs"].values()
    [matrix] = [job["strategy"]["matrix"] for job in jobs if "matrix" in job.get("strategy", {})]
    return list(matrix["problem"])


PROBLEMS = ci_problems()


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


def test_the_workflows_exist():
    assert workflow_names() == ["ci.yml", "docs.yml", "release.yml", "scheduled.yml"]


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


PINNED = re.compile(
    r"^\s*(?:- )?uses: ([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)$"
)


def test_actions_are_pinned_to_commits_with_their_release_in_a_comment():
    """A tag can be moved to other code; a commit cannot. Dependabot updates SHA and comment."""
    pins: dict[str, set[tuple[str, str]]] = {}
    for name in workflow_names():
        lines = [line for line in (WORKFLOWS / name).read_text().splitlines() if "uses:" in line]
        assert lines, name
        for line in lines:
            match = PINNED.match(line)
            assert match, f"{name}: `{line.strip()}` is not `uses: owner/repo@<sha> # vX.Y.Z`"
            pins.setdefault(match.group(1), set()).add(match.group(2, 3))
    assert all(len(versions) == 1 for versions in pins.values()), pins  # one version each


@pytest.mark.parametrize("name", workflow_names())
def test_checkouts_keep_no_credentials(name):
    for job_id, _, step in steps(load_workflow(name)):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, (name, job_id)


@pytest.mark.parametrize("name", workflow_names())
def test_python_is_the_locked_one_and_no_pip_cache_is_restored(name):
    """`make install` uses uv: pip's cache would only be a way in for a poisoned cache."""
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    locked_python = next(
        item.split("=", 1)[1]
        for item in conda["dependencies"]
        if isinstance(item, str) and item.startswith("python=")
    )
    for job_id, _, step in steps(load_workflow(name)):
        if step.get("uses", "").startswith("actions/setup-python@"):
            assert step["with"]["python-version"] == locked_python, job_id
            assert "cache" not in step["with"], job_id
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
    [upload] = [step for step in uploads(job) if step["with"]["path"].rstrip("/") == store]
    assert "env.MLFLOW_TRACKING_URI == ''" in upload["if"]


def uploads(job: dict) -> list[dict]:
    return [
        step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact@")
    ]


def problem_jobs() -> list[tuple[str, dict, str]]:
    """(workflow, job, the target that trains) for the jobs that train per problem."""
    return [
        ("ci.yml", jobs_running(load_workflow("ci.yml"), "ci-staging")[0][1], "ci-staging"),
        (
            "release.yml",
            jobs_running(load_workflow("release.yml"), "release-prod")[0][1],
            "release-prod",
        ),
    ]


@pytest.mark.parametrize("name, job, target", problem_jobs(), ids=lambda v: str(v)[:12])
def test_ci_and_releases_train_the_default_problem_first_and_the_same_others(name, job, target):
    assert job["strategy"]["matrix"] == {"problem": PROBLEMS}, name  # releases train what CI does
    assert PROBLEMS[0] == "" and len(set(PROBLEMS)) == len(PROBLEMS)
    assert job["strategy"]["fail-fast"] is False  # one problem's verdict never hides the other's
    assert job["env"]["PROBLEM"] == "${{ matrix.problem }}"  # every make target reads it
    for problem in filter(None, job["strategy"]["matrix"]["problem"]):
        assert (ROOT / "problems" / problem / "environments" / "base.yaml").is_file(), problem
    # each leg uploads under its own artifact names
    names = [step["with"]["name"] for step in uploads(job)]
    for problem in PROBLEMS:
        legs = [matrix_value(name, problem) for name in names]
        assert len(set(legs)) == len(legs)
    assert len({matrix_value(names[0], problem) for problem in PROBLEMS}) == len(PROBLEMS)
    assert "matrix.problem" in job["name"]


@pytest.mark.parametrize("name, job, target", problem_jobs(), ids=lambda v: str(v)[:12])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_each_leg_uploads_and_summarises_the_files_its_make_targets_write(
    name, job, target, problem
):
    """The workflow's globs match the names the Makefile gives that problem's outputs."""
    env = "staging" if target == "ci-staging" else "prod"
    summarised = dry_run("ci-summary", f"ENV={env}", f"PROBLEM={problem}")
    written = {
        "training": dry_run(target, f"PROBLEM={problem}")[-1].rsplit("tee ", 1)[1],
        "summary": summarised[0].split()[-1],
        "verdict": summarised[1].split()[-1],
        "show": dry_run("ci-show", f"ENV={env}", f"PROBLEM={problem}")[-1].split()[-1],
    }
    expected = f"outputs/{problem + '-' if problem else ''}{env}"
    assert written == {
        "training": f"{expected}.out",
        "summary": f"{expected}-summary.md",
        "verdict": f"{expected}-verdict.md",
        "show": f"{expected}-show.json",
    }
    [training_upload] = [step for step in uploads(job) if "training" in step["with"]["name"]]
    globs = training_upload["with"]["path"].split()
    uploaded = {"summary", "verdict"} if env == "prod" else {"summary"}
    for what, path in written.items():  # the training output and the show JSON name the server
        matched = any(fnmatch.fnmatch(path, pattern) for pattern in globs)
        assert matched == (what in uploaded), (what, path, globs)
    summary_if = step_running(job, "ci-summary")["if"]
    [glob] = re.findall(r"hashFiles\('([^']+)'\)", summary_if)
    assert fnmatch.fnmatch(written["training"], glob)


def test_every_ml_project_call_of_the_makefile_takes_the_problem():
    """PROBLEM reaches every command that reads a problem's settings (not `summary`, which
    reads a training's result); left empty, no --problem is passed at all."""
    targets = [
        target
        for target, recipe in makefile_recipes().items()
        if "ml-project" in recipe or "$(MONITOR)" in recipe
    ]
    assert {"train", "ci-staging", "release-prod", "batch", "score", "ci-monitor"} <= set(targets)
    calls = 0
    for target in targets:
        for problem in ("", "zz_probe"):
            for line in dry_run(target, f"PROBLEM={problem}"):
                for command, rest in re.findall(r"ml-project\s+([a-z-]+)([^|;)]*)", line):
                    if command == "summary":
                        continue
                    calls += 1
                    words = rest.split()
                    expected = ["--problem", problem] if problem else []
                    found = words[words.index("--problem") :][:2] if "--problem" in words else []
                    assert found == expected, f"{target}: ml-project {command}{rest}"
    assert calls >= 20


@pytest.fixture
def fake_cli(tmp_path):
    """A BIN folder whose `ml-project` prints the arguments it was given, one JSON list."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "ml-project"
    script.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    "variables, query",
    [
        ([], ""),  # the default: no filter
        (["BATCH_QUERY=month == 12"], "month == 12"),
        (
            ['BATCH_QUERY=status == "hurricane" and wind > 64'],
            'status == "hurricane" and wind > 64',
        ),
        (["BATCH_QUERY=name == 'Bob'", "PROBLEM=storms"], "name == 'Bob'"),
    ],
    ids=["empty", "plain", "double-quotes", "single-quotes"],
)
def test_batch_hands_its_query_over_intact(fake_cli, tmp_path, variables, query):
    done = run_make(
        "batch",
        "ENV=prod",
        f"OUT={tmp_path / 'out'}",
        *variables,
        cwd=ROOT,
        env={},
        bin_dir=fake_cli,
    )
    assert done.returncode == 0, done.stderr
    [printed] = [line for line in done.stdout.splitlines() if line.startswith('["')]
    args = json.loads(printed)
    problem = ["--problem", "storms"] if "PROBLEM=storms" in variables else []
    prefix = "storms-" if problem else ""
    assert args == [
        "extract-batch",
        "--env",
        "prod",
        *problem,
        "--query",
        query,
        "--output",
        str(tmp_path / "out" / f"{prefix}batch.parquet"),
    ]


def test_release_tags_retrain_prod_in_the_production_environment():
    release = load_workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*", "!v*-*"]}}
    [(job_id, job)] = jobs_running(release, "release-prod")
    assert job["environment"] == "production"
    assert job["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    concurrency = concurrency_of(release, job)
    assert concurrency["cancel-in-progress"] is False
    # one prod training per problem at a time; different problems train side by side
    groups = {matrix_value(concurrency["group"], problem) for problem in PROBLEMS}
    assert len(groups) == len(PROBLEMS) and all(groups)
    assert {"lint", "test-fast"} <= set(makes(release["jobs"][job["needs"]]))
    assert "!cancelled()" in step_running(job, "ci-summary")["if"]
    assert not jobs_running(release, "ci-staging")


def test_scheduled_retraining_runs_the_champions_release_like_a_release():
    scheduled = load_workflow("scheduled.yml")
    assert scheduled["on"]["schedule"][0]["cron"]
    assert "workflow_dispatch" in scheduled["on"]
    [(job_id, job)] = jobs_running(scheduled, "release-prod")
    assert job["environment"] == "production"
    [(monitor_job_id, monitor_job)] = jobs_running(scheduled, "ci-monitor")
    assert jobs_running(scheduled, "latest-release") == [(monitor_job_id, monitor_job)]
    assert job["needs"] == monitor_job_id
    assert job["steps"][0]["with"]["ref"] == f"${{{{ needs.{monitor_job_id}.outputs.tag }}}}"
    # retraining happens on drift (or when forced by hand), never on a failed drift check alone
    assert f"needs.{monitor_job_id}.outputs.tag != ''" in job["if"]
    assert f"needs.{monitor_job_id}.outputs.drift == 'true'" in job["if"]
    assert "inputs.retrain" in job["if"]
    assert scheduled["on"]["workflow_dispatch"]["inputs"]["retrain"]["type"] == "boolean"
    # it watches the default problem, in the group a release of the default problem takes
    assert job["env"]["PROBLEM"] == "" and monitor_job["env"]["PROBLEM"] == ""
    release = load_workflow("release.yml")
    [(_, release_job)] = jobs_running(release, "release-prod")
    same_group = concurrency_of(scheduled, job)["group"]
    assert same_group == matrix_value(concurrency_of(release, release_job)["group"], "")


def test_scheduled_scoring_runs_the_champion_of_its_release_then_the_drift_check():
    scheduled = load_workflow("scheduled.yml")
    [(job_id, job)] = jobs_running(scheduled, "ci-monitor")
    assert job["environment"] == "production"  # prod's champion: prod's secrets
    release_step = step_running(job, "latest-release")
    tag = f"steps.{release_step['id']}.outputs.tag"
    assert job["outputs"]["tag"] == f"${{{{ {tag} }}}}"
    after = job["steps"][job["steps"].index(release_step) + 1 :]
    checkout = after[0]  # the champion's release, before anything runs its code
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["ref"] == f"${{{{ {tag} }}}}" and checkout["with"]["clean"] is False
    assert all(f"{tag} != ''" in step["if"] for step in after)  # no champion: nothing to do
    order = makes(job)
    assert order.index("latest-release") < order.index("settle") < order.index("batch")
    assert order.index("batch") < order.index("score") < order.index("ci-monitor")
    batch = command_words(run_lines(step_running(job, "batch")["run"])[0])
    assert "ENV=prod" in batch  # the records as prod's settings read them
    # every record on schedule (no drift by design); a manual run may pick a drifted period
    assert job["env"]["BATCH_QUERY"] == "${{ inputs.batch_query }}"
    query = scheduled["on"]["workflow_dispatch"]["inputs"]["batch_query"]
    assert (query["type"], query["default"]) == ("string", "")
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


def test_ci_jobs_that_install_restore_uvs_cache_keyed_on_the_lock():
    """uv (what `make install` uses) never reads pip's cache: ci.yml restores its own. The
    release and scheduled workflows, which write prod, restore no cache a branch could fill."""
    for job_id, job in load_workflow("ci.yml")["jobs"].items():
        if "install" not in makes(job):
            continue
        caches = [s for s in job["steps"] if s.get("uses", "").startswith("actions/cache@")]
        # and the job that runs mypy, mypy's own (checked entry by entry against the files)
        expected = ["~/.cache/uv", *([".mypy_cache"] if "lint" in makes(job) else [])]
        assert [c["with"]["path"] for c in caches] == expected, job_id
        for cache in caches:
            assert "hashFiles('requirements.lock')" in cache["with"]["key"], job_id
    for name in ("release.yml", "scheduled.yml"):
        for job_id, _, step in steps(load_workflow(name)):
            assert not step.get("uses", "").startswith("actions/cache@"), (name, job_id)
