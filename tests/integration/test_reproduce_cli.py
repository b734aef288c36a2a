"""`ml-project reproduce` end to end on the synthetic problems: the real CLI in a subprocess,
real git, and a copy of the store the `synthetic_models` fixture trained (reproduce logs runs
and tags versions, so it never writes to the shared store)."""

import hashlib
import json
import math
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import metrics as metrics_registry
from tests.conftest import copy_store, empty_store, git, last_json, make_project_copy, run_cli
from tests.synthetic import KINDS

pytestmark = pytest.mark.integration


# This module's reproductions check out their code under a folder of their own: other modules
# reproduce from the same shared project at the same time, and their worktrees are not ours.
SCRATCH = Path(tempfile.mkdtemp(prefix="test-reproduce-cli-"))


@pytest.fixture(scope="module", autouse=True)
def _scratch_removed():
    yield
    shutil.rmtree(SCRATCH, ignore_errors=True)


def reproduce(repo: Path, store: str, *args: str):
    return run_cli("reproduce", *args, cwd=repo, tracking_uri=store, env={"TMPDIR": str(SCRATCH)})


def version_args(kind: str) -> tuple[str, ...]:
    return ("--env", "dev", "--problem", f"synthetic_{kind}", "--version", "1")


def steps(report: dict) -> dict:
    return {step["step"]: step for step in report["steps"]}


def assert_tree_untouched(repo: Path) -> None:
    assert git(repo, "status", "--porcelain") == ""
    worktrees = git(repo, "worktree", "list").splitlines()
    assert worktrees[0].startswith(f"{repo} ")
    assert not [line for line in worktrees if line.startswith(str(SCRATCH))], worktrees
    assert list(SCRATCH.iterdir()) == []  # the checkout and its scratch files are removed


def copy_repo(repo: Path, destination: Path) -> Path:
    """The project repository with its history (so the recorded commit is there), elsewhere."""
    shutil.copytree(repo, destination, symlinks=True)
    return destination


@pytest.fixture(scope="module")
def store(synthetic_models, tmp_path_factory) -> str:
    """This module's copy of the store holding a dev version 1 of each synthetic kind."""
    return copy_store(synthetic_models["binary"]["uri"], tmp_path_factory.mktemp("reproduce"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_dev_model_of_each_kind_is_reproduced_identically(
    kind, synthetic_project, synthetic_models, store
):
    trained = synthetic_models[kind]["result"]
    done = reproduce(synthetic_project, store, *version_args(kind), "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "identical" and report["first_difference"] == ""
    assert report["run_id"] == trained["run_id"]
    assert report["commit"] == git(synthetic_project, "rev-parse", "HEAD")
    by_step = steps(report)
    for name in ("environment", "config", "sources", "data", "features", "model", "predictions",
                 "metrics"):  # fmt: skip
        assert by_step[name]["status"] == "identical", by_step[name]
    assert by_step["code"]["protocol"] == "2"
    assert list(by_step["sources"]["files"]) == [f"synthetic_{kind}"]
    assert by_step["features"]["recorded"] == by_step["features"]["rebuilt"]
    content = by_step["model"]["content"]  # the skops file's content digest (model_digest.py)
    assert content["recorded"] == content["rebuilt"] and by_step["model"]["content_from"] == "tag"
    assert by_step["predictions"]["max_abs_diff"] == 0.0
    assert by_step["predictions"]["rows"] == trained["rows"]["test"]
    metrics = by_step["metrics"]
    assert metrics["task"] == kind and set(metrics["values"]) == set(trained["metrics"])
    for name, value in trained["metrics"].items():  # NaN: rmsle of labels below 0
        rebuilt = metrics["values"][name]["rebuilt"]
        assert rebuilt == value or (math.isnan(rebuilt) and math.isnan(value)), name
    summary = done.stdout.splitlines()
    assert summary[0].startswith(f"Reproduction of synthetic_{kind}_dev version 1 from commit")
    assert summary[0].endswith(": identical.")
    first = next(iter(metrics_registry.metrics_of(kind)))  # shown in the registry's order
    assert any(line.split()[:3] == ["metrics", "identical", f"({first}"] for line in summary)
    assert_tree_untouched(synthetic_project)

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(report["reproduction_run_id"])
    assert run.data.tags["ml_project.run_type"] == "reproduction"
    assert run.data.tags["reproduction.of_run_id"] == trained["run_id"]
    assert run.data.tags["reproduction.model_version"] == "1"
    assert run.data.tags["reproduction.verdict"] == "identical"
    assert run.info.experiment_id == client.get_run(trained["run_id"]).info.experiment_id
    logged = client.download_artifacts(run.info.run_id, "reproduction/report.json")
    assert '"verdict": "identical"' in Path(logged).read_text()
    version = client.get_model_version(f"synthetic_{kind}_dev", "1")
    assert version.tags["reproduction.run_id"] == run.info.run_id


def test_training_records_what_reproduce_compares(synthetic_project, synthetic_models, store):
    trained = synthetic_models["regression"]["result"]
    client = MlflowClient(tracking_uri=store)
    tags = client.get_run(trained["run_id"]).data.tags
    version = client.get_model_version("synthetic_regression_dev", "1")
    for key in ("features.digest", "predictions.digest", "data.test_keys_digest"):
        assert len(tags[key]) == 64  # on the run; the version leads to it
    assert version.tags["run_id"] == trained["run_id"] and "features.digest" not in version.tags
    assert tags["ml_project.rebuild_protocol"] == "2" and tags["ml_project.task"] == "regression"
    table = synthetic_project / "data" / "synthetic_regression.csv"
    assert tags["data.tables"] == "synthetic_regression"
    assert tags["data.table.synthetic_regression.path"] == str(table)
    sha256 = hashlib.sha256(table.read_bytes()).hexdigest()
    assert tags["data.table.synthetic_regression.sha256"] == sha256
    sample = pd.read_csv(client.download_artifacts(trained["run_id"], "features/sample.csv"))
    assert len(sample) == 100 and "colour" in sample.columns
    schema = json.loads(
        Path(client.download_artifacts(trained["run_id"], "data/schema.json")).read_text()
    )
    assert list(schema) == ["synthetic_regression"]
    assert schema["synthetic_regression"]["id"] == "int64"
    lock = client.download_artifacts(trained["run_id"], "environment/requirements.lock")
    assert "scikit-learn==" in Path(lock).read_text()


def test_a_version_can_be_named_by_alias(synthetic_project, synthetic_models, store):
    client = MlflowClient(tracking_uri=store)
    client.set_registered_model_alias("synthetic_multiclass_dev", "candidate", "1")
    uri = "models:/synthetic_multiclass_dev@candidate"
    done = reproduce(synthetic_project, store, "--model-uri", uri, "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    run_id = synthetic_models["multiclass"]["result"]["run_id"]
    assert (report["model_version"], report["run_id"]) == ("1", run_id)
    assert report["verdict"] == "identical"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--env", "dev", "--problem", "synthetic_binary", "--version", "99"], 8,
         "no model synthetic_binary_dev version 99"),
        (["--model-uri", "models:/synthetic_binary_dev@nobody"], 8, "alias @nobody"),
        (["--run-id", "0" * 32], 8, "The registry has no run"),
        (["--env", "dev"], 2, "name one model"),
        (["--version", "1"], 2, "name one model"),
        (["--env", "dev", "--version", "1", "--run-id", "x"], 2, "name one model"),
        (["--model-uri", "runs:/abc/model"], 2, "expected models:/<name>/<version>"),
        (["--env", "dev", "--version", "1", "--tolerance", "-1"], 2, "--tolerance"),
        ([*version_args("binary"), "--table", "other=x.csv"], 2,
         "was trained on the table(s) synthetic_binary; name one of them"),
        ([*version_args("binary"), "--table", "synthetic_binary"], 2, "--table expects NAME=PATH"),
    ],
)  # fmt: skip
def test_bad_targets_get_one_paragraph_and_their_exit_code(
    synthetic_project, store, args, code, message
):
    done = reproduce(synthetic_project, store, *args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_commit_missing_from_the_repository_is_a_clear_error(
    tmp_path, synthetic_project, synthetic_models, store
):
    """A clone whose history does not hold the commit that trained version 1 (rewritten)."""
    other = make_project_copy(tmp_path / "rewritten")
    shutil.copytree(synthetic_project / "problems", other / "problems", dirs_exist_ok=True)
    (other / "NOTES.md").write_text("history rewritten\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "--amend", "-m", "rewritten history")
    done = reproduce(other, store, *version_args("binary"))
    assert done.returncode == 8, done.stderr
    commit = synthetic_models["binary"]["result"]["lineage"]["git.commit"]
    assert f"Commit {commit} that trained synthetic_binary_dev version 1" in done.stderr
    assert "is not in the repository" in done.stderr and "Traceback" not in done.stderr
    assert_tree_untouched(other)


def test_a_changed_data_file_stops_with_the_data_changed_report(
    tmp_path, synthetic_project, synthetic_models, store
):
    """The project elsewhere, one value of the table changed: relative table paths resolve
    against the project reproduce runs in, and nothing is retrained."""
    repo = copy_repo(synthetic_project, tmp_path / "project")
    table = repo / "data" / "synthetic_binary.csv"
    frame = pd.read_csv(table)
    frame.loc[0, "x1"] = frame.loc[0, "x1"] + 1.0
    frame.to_csv(table, index=False)
    done = reproduce(repo, store, *version_args("binary"), "--json")
    assert done.returncode == 6, done.stderr
    assert done.stderr.startswith("ml-project: not reproduced: data changed:")
    assert "Traceback" not in done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "data_changed" and not report["reproduced"]
    by_step = steps(report)
    assert "model" not in by_step and "features" not in by_step  # stopped before training
    source = by_step["sources"]["files"]["synthetic_binary"]
    trained = synthetic_models["binary"]["result"]
    tags = MlflowClient(tracking_uri=store).get_run(trained["run_id"]).data.tags
    assert source["recorded"]["sha256"] == tags["data.table.synthetic_binary.sha256"]
    assert source["recorded"]["path"] == str(synthetic_project / "data" / "synthetic_binary.csv")
    assert source["today"]["path"] == str(table) and not source["sha256_equal"]
    assert source["today"]["rows"] == 3000
    assert source["schema_changes"] == {"added": [], "removed": [], "retyped": {}}
    digest = by_step["data"]["digests"]["digest"]
    assert digest["recorded"] == trained["lineage"]["data.digest"] != digest["rebuilt"]
    assert "DATA CHANGED" in done.stdout and "synthetic_binary: CHANGED" in done.stdout
    run = MlflowClient(tracking_uri=store).get_run(report["reproduction_run_id"])
    assert run.data.tags["reproduction.verdict"] == "data_changed"


def test_a_moved_data_file_reproduces_with_the_table_option(
    tmp_path, synthetic_project, synthetic_models, store
):
    repo = copy_repo(synthetic_project, tmp_path / "project")
    moved = tmp_path / "elsewhere" / "copy.csv"
    moved.parent.mkdir()
    shutil.move(repo / "data" / "synthetic_regression.csv", moved)
    missing = reproduce(repo, store, *version_args("regression"))
    assert missing.returncode == 3, missing.stderr
    gone = repo / "data" / "synthetic_regression.csv"
    assert missing.stderr.startswith(f"ml-project: data error: {gone}: no such file.")
    assert "pass --table synthetic_regression=PATH to read a copy of it" in missing.stderr
    assert "Traceback" not in missing.stderr

    table = f"synthetic_regression={moved}"
    done = reproduce(repo, store, *version_args("regression"), "--table", table, "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "identical"
    source = steps(report)["sources"]["files"]["synthetic_regression"]
    assert source["today"]["path"] == str(moved) and source["sha256_equal"]
    recorded = synthetic_models["regression"]["result"]["run_id"]
    assert report["run_id"] == recorded


def test_a_version_without_the_rebuild_protocol_is_refused(
    tmp_path, synthetic_project, synthetic_models, store
):
    """As a version trained before problems/ existed: refused before anything is rebuilt."""
    old_store = copy_store(store, tmp_path)
    client = MlflowClient(tracking_uri=old_store)
    run_id = synthetic_models["binary"]["result"]["run_id"]
    client.delete_tag(run_id, "ml_project.rebuild_protocol")
    client.delete_model_version_tag("synthetic_binary_dev", "1", "ml_project.rebuild_protocol")
    runs_before = len(client.search_runs([client.get_run(run_id).info.experiment_id]))
    done = reproduce(synthetic_project, old_store, *version_args("binary"), "--json")
    assert done.returncode == 6, done.stderr
    message = done.stderr.strip()
    assert message.startswith(
        f"ml-project: not reproduced: synthetic_binary_dev version 1 (run {run_id}) was "
        "trained with an older rebuild protocol"
    )
    assert "no tag ml_project.rebuild_protocol" in message and "predates problems/" in message
    commit = synthetic_models["binary"]["result"]["lineage"]["git.commit"]
    assert f"check its commit {commit[:12]} out" in message
    assert "run that commit's own `ml-project reproduce` there" in message
    assert "\n" not in message and "Traceback" not in message and done.stdout == ""
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == runs_before
    assert_tree_untouched(synthetic_project)


def test_strict_refuses_a_different_environment(synthetic_project, synthetic_models, store):
    """--strict stops before rebuilding (the run is named by its id); without it, a warning."""
    run_id = synthetic_models["regression"]["result"]["run_id"]
    client = MlflowClient(tracking_uri=store)
    recorded = client.get_run(run_id).data.tags["pkg.numpy"]
    client.set_tag(run_id, "pkg.numpy", "1.0.0")
    try:
        strict = reproduce(synthetic_project, store, "--run-id", run_id, "--strict", "--json")
        lenient = reproduce(synthetic_project, store, *version_args("regression"))
    finally:
        client.set_tag(run_id, "pkg.numpy", recorded)
    assert strict.returncode == 6, strict.stderr
    assert f"numpy was 1.0.0 at training, is {recorded} now" in strict.stderr
    report = last_json(strict.stdout)
    assert report["verdict"] == "environment_differs" and report["model_version"] == "1"
    assert [step["step"] for step in report["steps"]] == ["environment"]  # nothing rebuilt
    assert lenient.returncode == 0, lenient.stderr
    assert f"warning: numpy was 1.0.0 at training, is {recorded} now" in lenient.stdout


def test_the_old_commits_own_driver_and_problem_code_run(
    tmp_path, synthetic_project, synthetic_models, store
):
    """Version 1 was trained at commit A. Commit B breaks B's rebuild driver and changes the
    problem's model; reproducing A's version from B is identical only if A's driver ran and
    imported A's problem code from the worktree (not B's from the user's tree)."""
    repo = copy_repo(synthetic_project, tmp_path / "two-commits")
    commit_a = git(repo, "rev-parse", "HEAD")
    driver = repo / "ml_project" / "rebuild.py"
    source = driver.read_text()
    marker = 'def main(argv: list[str]) -> int:\n    """'
    assert marker in source
    driver.write_text(source.replace(marker, 'def main(argv: list[str]) -> int:\n    raise '
                                     'SystemExit("commit B\'s driver ran")\n    """'))  # fmt: skip
    problem = repo / "problems" / "synthetic_regression" / "problem.py"
    problem.write_text(
        "from sklearn.dummy import DummyRegressor\n\n\n"
        "def build_model(*, features, task, params, seed):\n"
        "    return DummyRegressor()\n"
    )
    git(repo, "commit", "-q", "-am", "B: another driver and another model")

    done = reproduce(repo, store, *version_args("regression"), "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "identical" and report["commit"] == commit_a
    by_step = steps(report)
    assert by_step["code"]["commit"] == commit_a
    digest = synthetic_models["regression"]["result"]["lineage"]
    assert by_step["model"]["status"] == "identical"
    assert by_step["data"]["digests"]["digest"]["rebuilt"] == digest["data.digest"]
    assert git(repo, "log", "-1", "--format=%s") == "B: another driver and another model"
    assert "DummyRegressor" in problem.read_text()
    assert_tree_untouched(repo)


def test_a_commit_without_the_problem_fails_in_one_paragraph(tmp_path):
    """Trained in dev from an uncommitted problem: its commit holds no problems/<name>/, so the
    old code cannot even load the settings. One paragraph, exit 6; the old code's traceback
    is kept on the reproduction run, never printed."""
    from tests.synthetic import write_problem

    repo = make_project_copy(tmp_path / "project")
    name = write_problem(repo, "binary", name="uncommitted", rows=600)
    uri = empty_store(tmp_path)
    done = run_cli("train", "--env", "dev", "--problem", name, "--json",
                   cwd=repo, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    done = reproduce(repo, uri, "--env", "dev", "--problem", name, "--version", "1", "--json")
    assert done.returncode == 6, done.stderr[-3000:]
    message = [line for line in done.stderr.splitlines() if line.startswith("ml-project:")]
    assert len(message) == 1 and "failed at step" in message[0], done.stderr
    assert "reproduction/traceback.txt" in message[0]
    summary = done.stdout.strip().splitlines()[:-1]  # the last line is --json's report
    assert "Traceback" not in done.stderr + "\n".join(summary)
    report = last_json(done.stdout)
    assert report["verdict"] == "different" and "Traceback" in report["traceback"]
    client = MlflowClient(uri)
    text = client.download_artifacts(report["reproduction_run_id"], "reproduction/traceback.txt")
    assert "Traceback" in Path(text).read_text()


def test_a_model_fitted_on_more_threads_is_rebuilt_on_as_many(synthetic_project, tmp_path):
    """A gradient boosting's sums depend on how many OpenMP threads add them up: a version
    trained on two threads, reproduced from a process bound to one (as the tests are), is
    rebuilt on two, the count its run recorded, and is identical."""
    uri = empty_store(tmp_path)
    trained = run_cli(
        "train", "--env", "dev", "--problem", "synthetic_multiclass", "--json",
        cwd=synthetic_project, tracking_uri=uri, env={"OMP_NUM_THREADS": "2"},
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    run = MlflowClient(uri).get_run(last_json(trained.stdout)["run_id"])
    assert run.data.tags["env.openmp_threads"] == "2"
    done = reproduce(
        synthetic_project, uri, "--env", "dev", "--problem", "synthetic_multiclass",
        "--version", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["verdict"] == "identical"
