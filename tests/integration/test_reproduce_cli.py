"""`ml-project reproduce` end to end: the real CLI in a subprocess, real git, a temp store."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from ml_project import data
from tests.conftest import git, last_json, make_project_copy, run_cli

pytestmark = pytest.mark.integration

FAST = ("--set", "params.max_iter=20")


def train(repo: Path, store: str, *args: str) -> dict:
    done = run_cli(
        "train", "--env", "staging", *FAST, *args, "--json", cwd=repo, tracking_uri=store
    )
    assert done.returncode == 0, done.stderr
    return last_json(done.stdout)


def reproduce(repo: Path, store: str, *args: str):
    return run_cli("reproduce", *args, cwd=repo, tracking_uri=store)


def steps(report: dict) -> dict:
    return {step["step"]: step for step in report["steps"]}


def assert_tree_untouched(repo: Path) -> None:
    assert git(repo, "status", "--porcelain") == ""
    assert len(git(repo, "worktree", "list").splitlines()) == 1


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('reproduce-store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def staging_v1(project_copy, store):
    """One staging model (version 1), trained from the clean project copy."""
    return train(project_copy, store)


def test_a_staging_model_is_reproduced_identically(project_copy, store, staging_v1):
    done = reproduce(project_copy, store, "--env", "staging", "--version", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "identical" and report["first_difference"] == ""
    assert report["run_id"] == staging_v1["run_id"]
    assert report["commit"] == git(project_copy, "rev-parse", "HEAD")
    by_step = steps(report)
    for name in ("environment", "config", "sources", "data", "features", "model", "predictions",
                 "metrics"):  # fmt: skip
        assert by_step[name]["status"] == "identical", by_step[name]
    assert by_step["features"]["recorded"] == by_step["features"]["rebuilt"]
    assert by_step["predictions"]["max_abs_diff"] == 0.0
    assert by_step["predictions"]["rows"] == staging_v1["rows"]["test"]
    assert by_step["metrics"]["values"]["roc_auc"]["rebuilt"] == staging_v1["metrics"]["roc_auc"]
    assert "flights_delay_staging version 1" in done.stdout and ": identical." in done.stdout
    assert_tree_untouched(project_copy)

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(report["reproduction_run_id"])
    assert run.data.tags["ml_project.run_type"] == "reproduction"
    assert run.data.tags["reproduction.of_run_id"] == staging_v1["run_id"]
    assert run.data.tags["reproduction.model_version"] == "1"
    assert run.data.tags["reproduction.verdict"] == "identical"
    assert run.info.experiment_id == client.get_run(staging_v1["run_id"]).info.experiment_id
    logged = client.download_artifacts(run.info.run_id, "reproduction/report.json")
    assert '"verdict": "identical"' in Path(logged).read_text()
    version = client.get_model_version("flights_delay_staging", "1")
    assert version.tags["reproduction.run_id"] == run.info.run_id


def test_training_records_what_reproduce_compares(store, staging_v1):
    client = MlflowClient(tracking_uri=store)
    tags = client.get_run(staging_v1["run_id"]).data.tags
    version = client.get_model_version("flights_delay_staging", "1")
    for key in ("features.digest", "predictions.digest", "data.test_keys_digest"):
        assert len(tags[key]) == 64 and version.tags[key] == tags[key]
    sample = pd.read_csv(client.download_artifacts(staging_v1["run_id"], "features/sample.csv"))
    assert len(sample) == 100 and list(sample.columns[:3]) == ["carrier", "origin", "dest"]
    assert sample[["carrier", "origin", "dest"]].dtypes.eq("float64").all()  # ordinal codes
    schema = client.download_artifacts(staging_v1["run_id"], "data/schema.json")
    assert '"arr_delay": "float64"' in Path(schema).read_text()
    lock = client.download_artifacts(staging_v1["run_id"], "environment/requirements.lock")
    assert "scikit-learn==" in Path(lock).read_text()


def test_a_version_can_be_named_by_alias(project_copy, store, staging_v1):
    client = MlflowClient(tracking_uri=store)
    client.set_registered_model_alias("flights_delay_staging", "candidate", "1")
    uri = "models:/flights_delay_staging@candidate"
    done = reproduce(project_copy, store, "--model-uri", uri, "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert (report["model_version"], report["run_id"]) == ("1", staging_v1["run_id"])
    assert report["verdict"] == "identical"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--env", "staging", "--version", "99"], 8, "no model flights_delay_staging version 99"),
        (["--model-uri", "models:/flights_delay_staging@nobody"], 8, "alias @nobody"),
        (["--run-id", "0" * 32], 8, "The registry has no run"),
        (["--env", "staging"], 2, "name one model"),
        (["--version", "1"], 2, "name one model"),
        (["--env", "staging", "--version", "1", "--run-id", "x"], 2, "name one model"),
        (["--model-uri", "runs:/abc/model"], 2, "expected models:/<name>/<version>"),
        (["--env", "staging", "--version", "1", "--tolerance", "-1"], 2, "--tolerance"),
    ],
)
def test_bad_targets_get_one_paragraph_and_their_exit_code(
    project_copy, store, staging_v1, args, code, message
):
    done = reproduce(project_copy, store, *args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_commit_missing_from_the_repository_is_a_clear_error(tmp_path, store, staging_v1):
    """A clone whose history does not hold the commit that trained version 1 (rewritten)."""
    other = make_project_copy(tmp_path / "rewritten")
    (other / "NOTES.md").write_text("history rewritten\n")
    git(other, "add", "-A")
    git(other, "commit", "-q", "--amend", "-m", "rewritten history")
    done = reproduce(other, store, "--env", "staging", "--version", "1")
    assert done.returncode == 8, done.stderr
    commit = staging_v1["lineage"]["git.commit"]
    assert f"Commit {commit} that trained flights_delay_staging version 1" in done.stderr
    assert "is not in the repository" in done.stderr and "Traceback" not in done.stderr
    assert_tree_untouched(other)


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    """A staging model trained on a user's own small flights file (every row used)."""
    folder = tmp_path_factory.mktemp("own-data")
    repo = make_project_copy(folder / "project")
    flights_path, _ = data.demo_data_paths()
    csv = folder / "flights.csv"
    pd.read_csv(flights_path).head(20_000).to_csv(csv, index=False)
    store = f"sqlite:///{folder / 'mlflow.db'}"
    result = train(repo, store, "--flights", str(csv), "--set", "data.sample_fraction=1.0")
    return repo, store, csv, result


def test_a_moved_copy_of_the_data_reproduces(own_data, tmp_path):
    repo, store, csv, _ = own_data
    moved = tmp_path / "moved.csv"
    shutil.copy(csv, moved)
    done = reproduce(repo, store, "--env", "staging", "--version", "1", "--flights", str(moved),
                     "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    flights = steps(last_json(done.stdout))["sources"]["files"]["flights"]
    assert flights["today"]["path"] == str(moved) and flights["recorded"]["path"] == str(csv)
    missing = reproduce(repo, store, "--env", "staging", "--version", "1", "--flights",
                        str(tmp_path / "gone.csv"))  # fmt: skip
    assert missing.returncode == 3 and "no such file" in missing.stderr
    assert str(csv) in missing.stderr


def test_one_changed_byte_stops_with_the_data_changed_report(own_data):
    repo, store, csv, result = own_data
    original = csv.read_bytes()
    lines = original.split(b"\n")
    column = lines[0].split(b",").index(b"distance")
    fields = lines[1].split(b",")
    fields[column] = (b"9" if fields[column][:1] != b"9" else b"8") + fields[column][1:]
    changed = b"\n".join([lines[0], b",".join(fields), *lines[2:]])
    assert len(changed) == len(original)
    assert sum(a != b for a, b in zip(changed, original, strict=True)) == 1
    csv.write_bytes(changed)
    try:
        done = reproduce(repo, store, "--env", "staging", "--version", "1", "--json")
    finally:
        csv.write_bytes(original)
    assert done.returncode == 6, done.stderr
    assert done.stderr.startswith("ml-project: not reproduced: data changed:")
    assert "Traceback" not in done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "data_changed" and not report["reproduced"]
    by_step = steps(report)
    assert "model" not in by_step and "features" not in by_step  # stopped before training
    flights = by_step["sources"]["files"]["flights"]
    tags = MlflowClient(tracking_uri=store).get_run(result["run_id"]).data.tags
    assert flights["recorded"]["sha256"] == tags["data.flights_file_digest"]
    assert not flights["sha256_equal"]
    assert flights["recorded"]["rows"] == flights["today"]["rows"] == 20_000
    assert flights["schema_changes"] == {"added": [], "removed": [], "retyped": {}}
    assert by_step["data"]["digests"]["digest"]["recorded"] == result["lineage"]["data.digest"]
    assert by_step["data"]["digests"]["digest"]["rebuilt"] != result["lineage"]["data.digest"]
    assert "DATA CHANGED" in done.stdout and "flights: CHANGED" in done.stdout
    run = MlflowClient(tracking_uri=store).get_run(report["reproduction_run_id"])
    assert run.data.tags["reproduction.verdict"] == "data_changed"


def test_strict_refuses_a_different_environment(own_data):
    """--strict stops before rebuilding (the run is named by its id); without it, a warning."""
    repo, store, _, result = own_data
    client = MlflowClient(tracking_uri=store)
    recorded = client.get_run(result["run_id"]).data.tags["pkg.numpy"]
    client.set_tag(result["run_id"], "pkg.numpy", "1.0.0")
    try:
        strict = reproduce(repo, store, "--run-id", result["run_id"], "--strict", "--json")
        lenient = reproduce(repo, store, "--env", "staging", "--version", "1")
    finally:
        client.set_tag(result["run_id"], "pkg.numpy", recorded)
    assert strict.returncode == 6, strict.stderr
    assert f"numpy was 1.0.0 at training, is {recorded} now" in strict.stderr
    report = last_json(strict.stdout)
    assert report["verdict"] == "environment_differs" and report["model_version"] == "1"
    assert [step["step"] for step in report["steps"]] == ["environment"]  # nothing rebuilt
    assert lenient.returncode == 0, lenient.stderr
    assert f"warning: numpy was 1.0.0 at training, is {recorded} now" in lenient.stdout


def test_the_old_commits_code_is_what_runs(tmp_path):
    """Train at commit A, change the feature code in commit B, reproduce A's version from B.

    Commit A has no rebuild driver at all (it predates it, like a project's first commit), so
    the rebuild must use A's own training functions; B's change alters the features digest, so
    an identical verdict means A's code ran.
    """
    repo = make_project_copy(tmp_path / "two-commits")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    driver_files = ["ml_project/rebuild.py", "ml_project/reproduce.py"]
    git(repo, "rm", "-q", *driver_files)
    git(repo, "commit", "-q", "-m", "A: before reproduce existed")
    commit_a = git(repo, "rev-parse", "HEAD")
    version_a = train(repo, store)

    git(repo, "checkout", "-q", "HEAD~1", "--", *driver_files)
    features = repo / "ml_project" / "features.py"
    source = features.read_text()
    assert "return (values // 100) * 60 + values % 100" in source
    features.write_text(source.replace("return (values // 100) * 60 + values % 100",
                                       "return (values // 100) * 60"))  # fmt: skip
    git(repo, "commit", "-q", "-am", "B: minutes after midnight rounded to the hour")
    version_b = train(repo, store)
    client = MlflowClient(tracking_uri=store)
    digest_a = client.get_run(version_a["run_id"]).data.tags["features.digest"]
    digest_b = client.get_run(version_b["run_id"]).data.tags["features.digest"]
    assert digest_a != digest_b  # B's code would not rebuild A's features

    done = reproduce(repo, store, "--env", "staging", "--version", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "identical" and report["commit"] == commit_a
    by_step = steps(report)
    assert by_step["code"]["commit"] == commit_a
    assert by_step["features"]["rebuilt"] == digest_a
    assert git(repo, "log", "-1", "--format=%s") == "B: minutes after midnight rounded to the hour"
    assert "return (values // 100) * 60\n" in features.read_text()
    assert_tree_untouched(repo)
