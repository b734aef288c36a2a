"""The hybrid (deploy model) pattern: a staging version copied into prod, then the prod gate."""

import pytest
from mlflow import MlflowClient

from ml_project import registry
from tests.conftest import last_json, run_cli

pytestmark = pytest.mark.integration

LINEAGE = ("git.commit", "git.dirty", "config.hash", "seed", "data.digest", "data.train_digest")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('hybrid-store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def promoted(project_copy, store):
    """Staging trains v1; it is copied into prod (passes), then again under a higher floor."""
    trained = run_cli(
        "train", "--env", "staging", "--set", "params.max_iter=50", "--json",
        cwd=project_copy, tracking_uri=store,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    copy = ["promote", "--from-env", "staging", "--to-env", "prod", "--version", "1", "--json"]
    passed = run_cli(*copy, cwd=project_copy, tracking_uri=store)
    refused = run_cli(
        *copy, "--set", "gate.floors.roc_auc=0.99", cwd=project_copy, tracking_uri=store
    )
    return last_json(trained.stdout), passed, refused


def test_the_copy_keeps_the_staging_lineage_and_records_its_source(promoted, store):
    trained, passed, _ = promoted
    assert passed.returncode == 0, passed.stderr
    result = last_json(passed.stdout)
    assert (result["model_name"], result["version"]) == ("flights_delay_prod", "1")
    client = MlflowClient(tracking_uri=store)
    original = client.get_model_version("flights_delay_staging", "1")
    copy = client.get_model_version("flights_delay_prod", "1")
    for key in LINEAGE:
        assert copy.tags[key] == original.tags[key], key
    assert copy.tags["run_id"] == original.tags["run_id"] == trained["run_id"]
    assert copy.tags["copied_from.model"] == "flights_delay_staging"
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
    assert floors == {"roc_auc": 0.74, "pr_auc": 0.5}  # prod's, not staging's
    client = MlflowClient(tracking_uri=store)
    copy = client.get_model_version("flights_delay_prod", "1")
    assert copy.tags["validation_status"] == "passed"
    assert float(copy.tags["gate.roc_auc"]) == gate["metrics"]["roc_auc"]
    assert copy.aliases == ["champion"]
    moves = registry.history(client, "flights_delay_prod")
    champion = [entry for entry in moves if entry["alias"] == "champion"]
    assert [(entry["action"], entry["to_version"]) for entry in champion] == [("gate", "1")]
    assert champion[0]["reason"].startswith("copied from flights_delay_staging version 1, passed")
    assert champion[0]["run_id"] == result["run_id"]
    run = client.get_run(result["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "flights_delay_prod"
    metrics = run.data.metrics
    # Staging used the same seed and split rule: none of prod's held-out rows trained it, and
    # prod holds out about 20% of every labelled flight (far more than staging's test rows).
    assert metrics["rows_test_seen_excluded"] == 0
    assert metrics["rows_test"] > 9 * trained["rows"]["test"]
    assert metrics["eval_roc_auc"] == pytest.approx(metrics["test_roc_auc"], abs=1e-9)


def test_a_copy_that_fails_the_prod_gate_stays_registered_without_an_alias(promoted, store):
    _, _, refused = promoted
    assert refused.returncode == 5, refused.stderr
    assert "failed the prod quality gate" in refused.stderr
    result = last_json(refused.stdout)
    assert result["version"] == "2" and result["champion_after"] == "1"
    client = MlflowClient(tracking_uri=store)
    copy = client.get_model_version("flights_delay_prod", "2")
    assert copy.tags["validation_status"] == "failed"
    assert "< floor 0.99" in copy.tags["validation_reasons"]
    assert copy.aliases == []
    assert client.get_registered_model("flights_delay_prod").aliases == {"champion": 1}
