"""The gate, aliases, rollback and forced promotion through the real CLI, on synthetic problems.

One module-scoped sequence of real dev trainings of the binary problem (each a subprocess on a
clean committed project copy, tests/synthetic.py), in one store:
  v1 good            -> passes its floors and the baseline, becomes champion
  v2 crippled        -> registered, fails its floors, exit 5, champion stays v1
  v3 a weaker model  -> passes its floors but is worse than v1 beyond the dev tolerance, exit 5
  v4 another seed    -> compared with v1 on held-out rows v1 never trained on, becomes champion
then rollback (-> v1), a second rollback (nothing earlier: exit 8), a forced promotion of v3.
Beside it: a crippled model of each task kind fails the gate alone, a good one of each kind
(tests/conftest.py's shared dev models) became champion, and a gate the task cannot measure is
a config error before any run.
"""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml_project import registry
from tests.conftest import commit_all, empty_store, last_json, make_project_copy, run_cli
from tests.synthetic import KINDS, write_problem

pytestmark = pytest.mark.integration

PROBLEM = "synthetic_binary"
MODEL = "synthetic_binary_dev"
TRAININGS = {
    "good": ["--set", "params.max_iter=20"],
    "crippled": ["--set", "params.max_iter=1", "--set", "params.max_leaf_nodes=2"],
    # stumps: they cannot learn the x3 * x4 interaction of the synthetic signal
    "weaker": ["--set", "params.max_iter=20", "--set", "params.max_leaf_nodes=2"],
    "other_seed": ["--set", "params.max_iter=20", "--seed", "7"],
}
# One stump, barely moved from the class priors: a multiclass model then predicts the majority
# class everywhere (no better than the baseline); the others fall far below their floors.
CRIPPLED = ["--set", "params.max_iter=1", "--set", "params.max_leaf_nodes=2"]
CRIPPLED += ["--set", "params.learning_rate=0.01"]
CRIPPLED_FAILS = {
    "binary": {("floor", "roc_auc"), ("ceiling", "log_loss")},
    "multiclass": {("floor", "accuracy"), ("lead", "accuracy")},
    "regression": {("floor", "r2")},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return empty_store(tmp_path_factory.mktemp("gate-store"))


@pytest.fixture(scope="module")
def trainings(synthetic_project, store):
    """Each training's exit code, output and final JSON, in order."""
    done = {}
    for name, args in TRAININGS.items():
        result = run_cli(
            "train", "--env", "dev", "--problem", PROBLEM, "--json", *args,
            cwd=synthetic_project, tracking_uri=store,
        )  # fmt: skip
        assert result.stdout.strip(), result.stderr
        done[name] = (result.returncode, result.stdout, result.stderr, last_json(result.stdout))
    show = run_cli(
        "show", "--env", "dev", "--problem", PROBLEM, "--json",
        cwd=synthetic_project, tracking_uri=store,
    )  # fmt: skip
    assert show.returncode == 0, show.stderr
    done["show"] = json.loads(show.stdout)
    return done


@pytest.fixture(scope="module")
def moves(trainings, synthetic_project, store):
    """Rollback, rollback again, a forced promotion without and with a reason, then show."""
    steps = {
        "rollback": ["rollback", "--env", "dev", "--json"],
        "rollback_again": ["rollback", "--env", "dev"],
        "no_reason": ["promote", "--env", "dev", "--version", "3"],
        "forced": ["promote", "--env", "dev", "--version", "3", "--reason", "try v3", "--json"],
        "show": ["show", "--env", "dev", "--history", "50"],
    }
    return {
        name: run_cli(*args, "--problem", PROBLEM, cwd=synthetic_project, tracking_uri=store)
        for name, args in steps.items()
    }


def client(store) -> MlflowClient:
    return MlflowClient(tracking_uri=store)


def test_a_good_model_becomes_champion_with_an_evaluation_on_held_out_rows(trainings, store):
    code, stdout, _, result = trainings["good"]
    assert code == 0
    assert result["model_version"] == "1"
    gate = result["gate"]
    assert gate["status"] == "passed" and gate["promoted"] is True
    assert (gate["champion_before"], gate["champion_after"]) == (None, "1")
    assert gate["aliases"] == ["champion"] and gate["champion_metrics"] == {}
    assert "gate       passed (champion none -> 1)" in stdout
    version = client(store).get_model_version(MODEL, "1")
    assert version.tags["validation_status"] == "passed"
    assert version.tags["gate.champion_version"] == "none"
    assert not any(key.startswith(("pkg.", "data.table.", "env.")) for key in version.tags)
    note = client(store).get_registered_model(MODEL).description
    assert "**Promotion history**" in note and "| champion | gate | - -> 1 |" in note
    run = client(store).get_run(result["run_id"])
    metrics = run.data.metrics
    # MLflow's evaluator scored the same held-out rows, with probabilities: its AUCs are ours.
    assert metrics["eval_example_count"] == result["rows"]["test"]
    assert metrics["eval_roc_auc"] == pytest.approx(metrics["test_roc_auc"], abs=1e-9)
    assert metrics["eval_precision_recall_auc"] == pytest.approx(metrics["test_pr_auc"], abs=1e-9)
    assert metrics["eval_log_loss"] == pytest.approx(metrics["test_log_loss"], abs=1e-9)
    artifacts = {item.path for item in client(store).list_artifacts(result["run_id"])}
    for plot in ("roc_curve", "precision_recall_curve", "calibration_curve", "lift_curve"):
        assert f"eval_{plot}_plot.png" in artifacts
    assert "eval_confusion_matrix.png" in artifacts
    contexts = sorted(item.tags[0].value for item in run.inputs.dataset_inputs)
    assert contexts == ["evaluation", "training"]
    assert run.data.tags["validation_status"] == "passed"
    assert "time_evaluation_s" in metrics and "time_gate_s" in metrics


def test_the_verdict_holds_the_lead_loss_constant_and_health_checks(trainings, store):
    """Beyond its floors, a version must lead a model that ignores the features by
    gate.min_lead, beat its loss, vary its scores, and not diverge while it trained."""
    _, stdout, _, result = trainings["good"]
    (lead,) = [c for c in result["gate"]["checks"] if c["name"] == "lead"]
    assert lead["metric"] == "roc_auc" and lead["passed"] is True
    assert result["baseline_metrics"]["roc_auc"] == 0.5
    assert lead["limit"] == pytest.approx(0.5 + 0.05 * 0.5)  # min_lead 0.05 of the room to 1
    assert lead["value"] == pytest.approx(result["metrics"]["roc_auc"])
    assert "of a model that ignores the features" in lead["message"]
    assert "gate.min_lead 0.05" in lead["message"] and lead["message"] in stdout
    logged = json.loads(client(store).get_model_version(MODEL, "1").tags["gate.checks"])
    assert [c["name"] for c in logged] == [
        "rows", "floor", "ceiling", "lead", "loss", "constant", "health"
    ]  # fmt: skip
    (health,) = [c for c in logged if c["name"] == "health"]
    assert health["passed"] and "gate.max_loss_rise 0.5" in health["message"]
    metrics = client(store).get_run(result["run_id"]).data.metrics
    assert metrics["baseline_roc_auc"] == pytest.approx(0.5)


def test_a_crippled_model_is_registered_tagged_failed_and_exits_with_the_gate_code(
    trainings, store
):
    code, stdout, stderr, result = trainings["crippled"]
    assert code == 5, stderr
    assert "quality gate failed" in stderr and "Traceback" not in stderr
    assert "version 2 failed the dev quality gate" in stderr
    assert result["model_version"] == "2"
    gate = result["gate"]
    assert gate["status"] == "failed" and gate["promoted"] is False
    assert gate["champion_after"] == "1" and gate["aliases"] == []
    failed = {(c["name"], c["metric"]) for c in gate["checks"] if not c["passed"]}
    assert {("floor", "roc_auc"), ("ceiling", "log_loss")} <= failed
    version = client(store).get_model_version(MODEL, "2")
    assert version.tags["validation_status"] == "failed"
    assert "< floor 0.7" in version.tags["validation_reasons"]
    assert "> ceiling 0.65" in version.tags["validation_reasons"]
    assert version.aliases == []
    run = client(store).get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["validation_status"] == "failed"
    assert "gate       failed (no alias; champion stays 1)" in stdout


def test_a_challenger_that_loses_to_the_champion_beyond_the_tolerance_is_refused(trainings, store):
    code, _, stderr, result = trainings["weaker"]
    assert code == 5, stderr
    gate = result["gate"]
    failed = [c for c in gate["checks"] if not c["passed"]]
    assert [(c["name"], c["metric"]) for c in failed] == [("champion", "roc_auc")]
    comparison = gate["comparison"]
    assert gate["champion_version"] == "1" and comparison["rows"] == result["rows"]["test"]
    trails = comparison["champion"]["roc_auc"] - comparison["challenger"]["roc_auc"]
    assert trails > gate["tolerance"] == 0.02
    tags = client(store).get_model_version(MODEL, "3").tags
    assert tags["validation_status"] == "failed"
    assert tags["gate.champion_version"] == "1"
    assert float(tags["gate.champion_roc_auc"]) == pytest.approx(comparison["champion"]["roc_auc"])
    assert "worse than the champion version 1" in tags["validation_reasons"]
    assert "more than the tolerance 0.02 (gate.tolerance 0.02)" in tags["validation_reasons"]


def test_the_champion_is_scored_only_on_rows_it_never_trained_on(trainings):
    code, _, stderr, result = trainings["other_seed"]
    assert code == 0, stderr
    gate = result["gate"]
    assert gate["champion_before"] == "1" and gate["champion_after"] == "4"
    comparison = gate["comparison"]
    # Seed 7 samples and splits other rows: some of its held-out rows trained version 1.
    assert comparison["excluded_rows"] > 0
    assert comparison["rows"] + comparison["excluded_rows"] == result["rows"]["test"]


def test_show_lists_versions_aliases_gate_results_and_lineage(trainings):
    shown = trainings["show"]
    assert shown["aliases"] == {"champion": "4"}
    versions = {item["version"]: item for item in shown["versions"]}
    assert [versions[v]["validation_status"] for v in "1234"] == [
        "passed",
        "failed",
        "failed",
        "passed",
    ]
    assert versions["4"]["aliases"] == ["champion"] and versions["2"]["aliases"] == []
    assert versions["4"]["lineage"]["seed"] == "7" and versions["1"]["lineage"]["seed"] == "42"
    assert len(versions["1"]["lineage"]["git.commit"]) == 40
    assert versions["3"]["compared_with"] == "1"
    assert versions["1"]["metrics"]["roc_auc"] > versions["2"]["metrics"]["roc_auc"]


def test_rollback_restores_the_previous_champion_and_stops_at_the_first(moves, store):
    rolled = moves["rollback"]
    assert rolled.returncode == 0, rolled.stderr
    assert last_json(rolled.stdout)["champion_before"] == "4"
    assert last_json(rolled.stdout)["champion_after"] == "1"
    again = moves["rollback_again"]
    assert again.returncode == 8
    assert "no earlier champion than version 1" in again.stderr
    assert "Traceback" not in again.stderr


def test_a_forced_promotion_needs_a_reason_and_is_recorded(moves, store):
    assert moves["no_reason"].returncode == 2
    assert "needs a non-empty --reason" in moves["no_reason"].stderr
    forced = moves["forced"]
    assert forced.returncode == 0, forced.stderr
    assert "did not pass the gate" in forced.stdout
    result = last_json(forced.stdout)
    assert (result["champion_before"], result["champion_after"]) == ("1", "3")
    assert result["validation_status"] == "failed"
    assert client(store).get_registered_model(MODEL).aliases == {"champion": 3}


def test_the_history_lists_every_alias_move(moves, store):
    registered = client(store).get_registered_model(MODEL)
    history = registry.read_history(registered.tags)
    champion = [
        (e["action"], e["from_version"], e["to_version"], e["reason"])
        for e in history
        if e["alias"] == "champion"
    ]
    assert [item[:3] for item in champion] == [
        ("gate", None, "1"),
        ("gate", "1", "4"),
        ("rollback", "4", "1"),
        ("forced", "1", "3"),
    ]
    assert champion[-1][3] == "try v3"
    challenger = [(e["action"], e["to_version"]) for e in history if e["alias"] == "challenger"]
    assert [a for a, v in challenger if a == "registered"] == ["registered"] * 4
    assert [v for a, v in challenger if a == "registered"] == ["1", "2", "3", "4"]
    # Each training removes its own `challenger` after the verdict: none is left behind.
    assert "challenger" not in registered.aliases
    for item in history:
        assert item["time"].endswith("Z") and item["actor"] and len(item["commit"]) == 40
    assert [e["time"] for e in history] == sorted(e["time"] for e in history)
    shown = moves["show"]
    assert shown.returncode == 0, shown.stderr
    assert f"{len(history)} of {len(history)} moves" in shown.stdout
    assert "rollback" in shown.stdout and "try v3" in shown.stdout
    assert "champion -> 3" in shown.stdout


def test_only_a_version_that_passed_its_gate_can_be_copied(trainings, synthetic_project, store):
    done = run_cli(
        "promote", "--from-env", "dev", "--to-env", "staging", "--version", "2",
        "--problem", PROBLEM, cwd=synthetic_project, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 5
    assert "validation_status=failed" in done.stderr and "Traceback" not in done.stderr


def test_promote_needs_one_of_its_two_forms(synthetic_project, store):
    done = run_cli(
        "promote", "--env", "dev", "--from-env", "staging", "--version", "1",
        "--problem", PROBLEM, cwd=synthetic_project, tracking_uri=store,
    )  # fmt: skip
    assert done.returncode == 2 and "promote takes either" in done.stderr


# --- each task kind ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_good_model_of_each_kind_becomes_champion(synthetic_models, kind):
    """The shared dev models (tests/conftest.py): each passed its floors and the baseline."""
    result = synthetic_models[kind]["result"]
    gate = result["gate"]
    assert gate["status"] == "passed" and gate["promoted"] is True
    assert gate["champion_after"] == result["model_version"] and gate["aliases"] == ["champion"]
    names = [c["name"] for c in gate["checks"]]
    assert names[0] == "rows" and {"lead", "loss", "constant", "health"} <= set(names)
    assert all(c["passed"] for c in gate["checks"])
    version = MlflowClient(tracking_uri=synthetic_models[kind]["uri"]).get_model_version(
        result["model_name"], result["model_version"]
    )
    assert version.tags["validation_status"] == "passed"


@pytest.fixture(scope="module")
def crippled(synthetic_project, tmp_path_factory):
    """A crippled dev model of each kind, alone in a fresh store (no champion to lose to)."""
    uri = empty_store(tmp_path_factory.mktemp("crippled-store"))
    out = {}
    for kind in KINDS:
        done = run_cli(
            "train", "--env", "dev", "--problem", f"synthetic_{kind}", "--json", *CRIPPLED,
            cwd=synthetic_project, tracking_uri=uri,
        )  # fmt: skip
        out[kind] = done
    return uri, out


@pytest.mark.parametrize("kind", KINDS)
def test_a_crippled_model_of_each_kind_fails_the_gate_without_an_alias(crippled, kind):
    uri, runs = crippled
    done = runs[kind]
    assert done.returncode == 5, done.stderr
    assert "version 1 failed the dev quality gate" in done.stderr
    assert "Traceback" not in done.stderr
    gate = last_json(done.stdout)["gate"]
    assert gate["status"] == "failed" and gate["champion_after"] is None
    failed = {(c["name"], c["metric"]) for c in gate["checks"] if not c["passed"]}
    assert CRIPPLED_FAILS[kind] <= failed
    name = f"synthetic_{kind}_dev"
    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version(name, "1")
    assert version.tags["validation_status"] == "failed" and version.aliases == []
    assert client.get_registered_model(name).aliases == {}


# --- a gate the task cannot measure ------------------------------------------------------------


@pytest.fixture
def regression_gate_on_roc_auc(tmp_path) -> Path:
    """A project whose regression problem sets a floor on roc_auc in its dev overlay."""
    root = make_project_copy(tmp_path / "project")
    write_problem(root, "regression")
    overlay = root / "problems" / "synthetic_regression" / "environments" / "dev.yaml"
    overlay.write_text("gate:\n  floors:\n    roc_auc: 0.7\n")
    commit_all(root, "a regression problem with a classification floor")
    return root


def test_a_regression_floor_on_roc_auc_is_a_config_error_before_any_run(
    regression_gate_on_roc_auc, store_uri
):
    done = run_cli(
        "train", "--env", "dev", "--problem", "synthetic_regression",
        cwd=regression_gate_on_roc_auc, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "gate.floors.roc_auc" in done.stderr
    assert "a regression task has no metric 'roc_auc'" in done.stderr
    assert "Traceback" not in done.stderr
    assert (
        MlflowClient(tracking_uri=store_uri).search_experiments(
            filter_string="name = 'synthetic_regression_dev'"
        )
        == []
    )


def test_a_primary_metric_the_task_lacks_is_a_config_error(synthetic_project, store_uri):
    done = run_cli(
        "train", "--env", "dev", "--problem", "synthetic_regression",
        "--set", "gate.primary_metric=roc_auc", cwd=synthetic_project, tracking_uri=store_uri,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "gate.primary_metric" in done.stderr and "(its metrics: r2, rmse" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_version_of_another_task_is_not_compared_with_the_champion(tmp_path):
    """Turning a multiclass problem binary keeps its registered model: the gate fails closed
    rather than compare metrics of two task kinds."""
    import pandas as pd

    root = make_project_copy(tmp_path / "project")
    name = write_problem(root, "multiclass", name="switched", rows=1500)
    base = root / "problems" / name / "environments" / "base.yaml"
    base.write_text(
        base.read_text().replace("floors: {'accuracy': 0.55}", "floors: {'accuracy': 0.4}")
    )
    commit_all(root, "a multiclass problem")
    store = empty_store(tmp_path)
    first = run_cli("train", "--env", "dev", "--problem", name, cwd=root, tracking_uri=store)
    assert first.returncode == 0, first.stderr
    two_classes = tmp_path / "two.csv"
    table = pd.read_csv(root / "data" / f"{name}.csv")
    table.assign(target=table["target"].replace({"c": "b"})).to_csv(two_classes, index=False)
    second = run_cli(
        "train", "--env", "dev", "--problem", name, "--set", "task=binary",
        "--table", f"{name}={two_classes}", "--json", cwd=root, tracking_uri=store,
    )  # fmt: skip
    assert second.returncode == 5, second.stderr
    reasons = " ".join(last_json(second.stdout)["gate"]["reasons"])
    assert "it is a multiclass model and this version a binary one" in reasons
    client = MlflowClient(tracking_uri=store)
    aliases = client.get_registered_model(f"{name}_dev").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"champion": "1"}
