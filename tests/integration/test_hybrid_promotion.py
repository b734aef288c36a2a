"""The hybrid (deploy model) pattern: a staging version copied into prod, then the prod gate.

On the synthetic binary problem (tests/synthetic.py) of a project copy whose problem has its
own prod overlay, as a user would write it: stricter floors than staging's, and a minimum of
held-out rows its 3000 rows can meet.
"""

from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml_project import registry
from tests.conftest import commit_all, empty_store, last_json, make_project_copy, run_cli
from tests.synthetic import write_problem

pytestmark = pytest.mark.integration

PROBLEM = "synthetic_binary"
PROD_OVERLAY = """\
gate:
  floors: {roc_auc: 0.72, pr_auc: 0.7}
  min_test_rows: 500
"""

LINEAGE = ("git.commit", "git.dirty", "config.hash", "seed", "data.digest", "ml_project.task")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return empty_store(tmp_path_factory.mktemp("hybrid-store"))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = make_project_copy(tmp_path_factory.mktemp("hybrid") / "project")
    write_problem(root, "binary")
    (root / "problems" / PROBLEM / "environments" / "prod.yaml").write_text(PROD_OVERLAY)
    commit_all(root, "a synthetic problem with a prod overlay")
    return root


@pytest.fixture(scope="module")
def promoted(project, store):
    """Staging trains v1; it is copied into prod (passes), then again under a higher floor."""
    trained = run_cli(
        "train", "--env", "staging", "--problem", PROBLEM, "--set", "params.max_iter=50",
        "--json", cwd=project, tracking_uri=store,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    copy = ["promote", "--from-env", "staging", "--to-env", "prod", "--version", "1", "--json"]
    copy += ["--problem", PROBLEM]
    passed = run_cli(*copy, cwd=project, tracking_uri=store)
    refused = run_cli(*copy, "--set", "gate.floors.roc_auc=0.99", cwd=project, tracking_uri=store)
    return last_json(trained.stdout), passed, refused


def test_the_copy_keeps_the_staging_lineage_and_records_its_source(promoted, store):
    trained, passed, _ = promoted
    assert passed.returncode == 0, passed.stderr
    result = last_json(passed.stdout)
    assert (result["model_name"], result["version"]) == ("synthetic_binary_prod", "1")
    client = MlflowClient(tracking_uri=store)
    original = client.get_model_version("synthetic_binary_staging", "1")
    copy = client.get_model_version("synthetic_binary_prod", "1")
    for key in LINEAGE:
        assert copy.tags[key] == original.tags[key], key
    assert copy.tags["run_id"] == original.tags["run_id"] == trained["run_id"]
    assert copy.tags["copied_from.model"] == "synthetic_binary_staging"
    assert copy.tags["copied_from.version"] == "1"
    assert copy.tags["copied_from.env"] == "staging"
    assert copy.tags["copied_from.validation_status"] == "passed"
    assert copy.tags["copied_by.run_id"] == result["run_id"]


def test_the_copy_is_judged_by_the_prod_gate_on_prod_held_out_rows(promoted, store):
    trained, passed, _ = promoted
    result = last_json(passed.stdout)
    gate = result["gate"]
    assert gate["status"] == "passed" and gate["promoted"] is True
    assert result["champion_after"] == "1"
    floors = {c["metric"]: c["limit"] for c in gate["checks"] if c["name"] == "floor"}
    assert floors == {"roc_auc": 0.72, "pr_auc": 0.7}  # prod's, not staging's (roc_auc 0.7)
    client = MlflowClient(tracking_uri=store)
    copy = client.get_model_version("synthetic_binary_prod", "1")
    assert copy.tags["validation_status"] == "passed"
    assert float(copy.tags["gate.roc_auc"]) == gate["metrics"]["roc_auc"]
    assert copy.aliases == ["champion"]
    moves = registry.history(client, "synthetic_binary_prod")
    champion = [entry for entry in moves if entry["alias"] == "champion"]
    assert [(entry["action"], entry["to_version"]) for entry in champion] == [("gate", "1")]
    assert champion[0]["reason"].startswith(
        "copied from synthetic_binary_staging version 1, passed"
    )
    assert champion[0]["run_id"] == result["run_id"]
    run = client.get_run(result["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "synthetic_binary_prod"
    metrics = run.data.metrics
    # Staging used the same seed and split rule: none of prod's held-out rows trained it, and
    # prod holds out about 20% of every labelled row (staging's test rows are from half of them).
    assert metrics["rows_test_seen_excluded"] == 0
    assert metrics["rows_test"] > 1.5 * trained["rows"]["test"]
    assert metrics["rows_test"] >= 500  # the overlay's gate.min_test_rows
    assert metrics["eval_roc_auc"] == pytest.approx(metrics["test_roc_auc"], abs=1e-9)


def test_a_copy_that_fails_the_prod_gate_stays_registered_without_an_alias(promoted, store):
    _, _, refused = promoted
    assert refused.returncode == 5, refused.stderr
    assert "failed the prod quality gate" in refused.stderr
    result = last_json(refused.stdout)
    assert result["version"] == "2" and result["champion_after"] == "1"
    assert "champion   1 (kept)" in refused.stdout and "1 -> 1" not in refused.stdout
    client = MlflowClient(tracking_uri=store)
    copy = client.get_model_version("synthetic_binary_prod", "2")
    assert copy.tags["validation_status"] == "failed"
    assert "< floor 0.99" in copy.tags["validation_reasons"]
    assert copy.aliases == []
    assert client.get_registered_model("synthetic_binary_prod").aliases == {"champion": 1}
