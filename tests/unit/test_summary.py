"""The CI job summary: Markdown from a training's --json result (hand-written results of each
task kind here; tests/integration/test_ci_fork.py renders a real one)."""

import json
import os
import signal

import pytest
from click.testing import CliRunner

from ml_project.cli import cli
from ml_project.errors import ConfigError
from ml_project.metrics import metrics_of
from ml_project.summary import read_result, render_summary, result_field
from ml_project.vocabulary import TASKS

RESULT = {
    "env": "staging",
    "problem": "churn",
    "task": "binary",
    "tracking_uri": "https://ci-bot:s3cret@mlflow.example.com/tracking",
    "experiment_id": "1",
    "run_id": "0123456789abcdef",
    "model_name": "churn_staging",
    "model_version": "7",
    "model_uri": "models:/churn_staging/7",
    "metrics": {"roc_auc": 0.75, "pr_auc": 0.5, "log_loss": 0.46, "brier": 0.15, "f1": 0.4},
    "baseline_metrics": {"roc_auc": 0.5, "pr_auc": 0.23, "log_loss": 0.54, "brier": 0.18},
    "rows": {"train": 26422, "test": 6586, "used": 33008, "labelled": 327346, "records": 336776},
    "lineage": {
        "git.commit": "a" * 40,
        "git.branch": "feature/x",
        "git.tag": "",
        "git.dirty": "false",
        "seed": "42",
        "config.hash": "c" * 64,
        "data.digest": "d" * 64,
    },
    "timings": {"fit": 3.25, "reading": 1.0},
}


def test_without_a_gate_it_says_so_and_shows_metrics_rows_and_lineage():
    markdown = render_summary(RESULT)
    assert markdown.startswith("## Training in staging: `churn_staging` version 7\n")
    assert "_No quality gate result in this output._" in markdown
    assert "| held-out metric | this model | baseline (no features) |" in markdown
    assert "| roc_auc ↑ | 0.7500 | 0.5000 |" in markdown
    assert "| log_loss ↓ | 0.4600 | 0.5400 |" in markdown
    assert "| f1 ↑ | 0.4000 | - |" in markdown  # missing beside the model: a dash
    assert "| train | 26,422 |" in markdown and "| labelled | 327,346 |" in markdown
    assert "| records read | 336,776 |" in markdown
    assert "| problem | churn |" in markdown and "| task | binary |" in markdown
    assert f"| commit | `{'a' * 40}` |" in markdown and "| branch | feature/x |" in markdown
    assert "| tag | - |" in markdown and "| seed | 42 |" in markdown
    assert f"| data digest | `{'d' * 16}` |" in markdown
    assert "| training time | 4.2 s |" in markdown


def test_the_store_is_named_by_kind_never_by_address_or_credentials():
    markdown = render_summary(RESULT)
    assert "| tracking store | tracking server (https) |" in markdown
    assert "s3cret" not in markdown and "example.com" not in markdown
    sqlite = render_summary({**RESULT, "tracking_uri": "sqlite:////runner/outputs/ci-store/x.db"})
    assert "| tracking store | embedded sqlite store |" in sqlite


def test_a_passed_gate_shows_the_champion_beside_the_challenger():
    gate = {
        "status": "passed",
        "reasons": ["roc_auc 0.7500 >= floor 0.7000", "roc_auc within 0.01 of champion"],
        "primary_metric": "roc_auc",
        "champion_version": "6",
        "champion_metrics": {"roc_auc": 0.7481, "pr_auc": 0.49},
    }
    markdown = render_summary({**RESULT, "gate": gate})
    assert "✅ **Quality gate: passed** on `roc_auc`, compared with champion version 6." in markdown
    assert "- roc_auc 0.7500 >= floor 0.7000\n- roc_auc within 0.01 of champion" in markdown
    assert "| held-out metric | this model | baseline (no features) | champion |" in markdown
    assert "| **roc_auc** ↑ | 0.7500 | 0.5000 | 0.7481 |" in markdown  # the primary metric
    assert "| log_loss ↓ | 0.4600 | 0.5400 | - |" in markdown
    assert "No quality gate" not in markdown


def test_a_failed_gate_without_champion_lists_its_reasons_and_details():
    gate = {
        "status": "failed",
        "reasons": "pr_auc 0.21 < floor 0.40 | see run",
        "champion_version": None,
        "aliases": ["challenger"],
        "thresholds": {"roc_auc": 0.7, "pr_auc": 0.4},
    }
    markdown = render_summary({**RESULT, "gate": gate})
    assert "❌ **Quality gate: failed**, no champion to compare with." in markdown
    assert "- pr_auc 0.21 < floor 0.40 \\| see run" in markdown
    assert "| aliases | challenger |" in markdown
    assert "| thresholds.pr_auc | 0.4000 |" in markdown
    assert "| held-out metric | this model | baseline (no features) |" in markdown


MULTICLASS = {
    **RESULT,
    "problem": "species",
    "task": "multiclass",
    "model_name": "species_staging",
    "metrics": {
        "accuracy": 0.81,
        "balanced_accuracy": 0.79,
        "f1_macro": 0.78,
        "roc_auc_ovr": 0.93,
        "log_loss": 0.52,
    },
    "baseline_metrics": {"accuracy": 0.4, "log_loss": 1.06, "roc_auc_ovr": 0.5},
}

REGRESSION = {
    **RESULT,
    "problem": "storms",
    "task": "regression",
    "model_name": "storms_pressure_staging",
    "metrics": {"r2": 0.91, "rmse": 5.75, "mae": 3.9, "median_ae": 2.5},
    "baseline_metrics": {"r2": -0.0001, "rmse": 19.2, "mae": 14.1, "median_ae": 11.0},
    "gate": {
        "status": "passed",
        "passed": True,
        "reasons": ["rmse 5.7500 < 19.2000 of a model that ignores the features"],
        "checks": [{"name": "baseline", "metric": "rmse", "passed": True, "value": 5.75}],
        "metrics": {"r2": 0.91, "rmse": 5.75},
        "primary_metric": "rmse",
        "tolerance": 0.01,
        "champion_version": "3",
        "champion_metrics": {"r2": 0.9, "rmse": 5.9},
        "comparison": {
            "rows": 812,
            "excluded_rows": 0,
            "champion": {"r2": 0.9, "rmse": 5.9},
            "challenger": {"r2": 0.91, "rmse": 5.75},
            "error": None,
        },
    },
}


def test_a_multiclass_result_shows_its_registry_metrics_in_order():
    markdown = render_summary(MULTICLASS)
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "0." in line]
    assert rows[:5] == [
        "| accuracy ↑ | 0.8100 | 0.4000 |",
        "| balanced_accuracy ↑ | 0.7900 | - |",
        "| f1_macro ↑ | 0.7800 | - |",
        "| roc_auc_ovr ↑ | 0.9300 | 0.5000 |",
        "| log_loss ↓ | 0.5200 | 1.0600 |",
    ]
    assert "roc_auc ↑" not in markdown.replace("roc_auc_ovr", "")
    assert "| task | multiclass |" in markdown


def test_a_regression_result_shows_lower_is_better_errors_beside_baseline_and_champion():
    markdown = render_summary(REGRESSION)
    assert markdown.startswith("## Training in staging: `storms_pressure_staging` version 7\n")
    assert "✅ **Quality gate: passed** on `rmse`, compared with champion version 3." in markdown
    assert "| held-out metric | this model | baseline (no features) | champion |" in markdown
    assert "| r2 ↑ | 0.9100 | -0.0001 | 0.9000 |" in markdown
    assert "| **rmse** ↓ | 5.7500 | 19.2000 | 5.9000 |" in markdown
    assert "| mae ↓ | 3.9000 | 14.1000 | - |" in markdown
    assert "| median_ae ↓ | 2.5000 | 11.0000 | - |" in markdown
    # what the table and the reasons already say is not repeated as gate details
    assert "| checks |" not in markdown and "| passed |" not in markdown
    assert "| metrics.rmse |" not in markdown and "comparison.champion" not in markdown
    assert "| comparison.rows | 812 |" in markdown
    assert "| comparison.challenger.rmse | 5.7500 |" in markdown
    assert "| tolerance | 0.0100 |" in markdown


@pytest.mark.parametrize("task", TASKS)
def test_every_metric_of_every_task_is_shown_with_its_direction(task):
    metrics = {name: 0.5 for name in metrics_of(task)}
    markdown = render_summary({**RESULT, "task": task, "metrics": metrics, "gate": None})
    for name, metric in metrics_of(task).items():
        arrow = "↑" if metric.higher_is_better else "↓"
        assert f"| {name} {arrow} | 0.5000 |" in markdown


def test_unknown_metrics_tasks_and_undefined_values_never_break_the_summary():
    odd = {"roc_auc": float("nan"), "lift_at_10": 2.5, "accuracy": 0.9}
    markdown = render_summary({**RESULT, "task": "ranking", "metrics": odd, "rows": {"x": 3}})
    assert "| roc_auc ↑ | n/a | 0.5000 |" in markdown  # undefined on these rows
    assert "| accuracy ↑ | 0.9000 | - |" in markdown  # every task agrees on its direction
    assert "| lift_at_10 | 2.5000 | - |" in markdown  # not in any registry: no arrow
    assert "| x | 3 |" in markdown
    older = {key: value for key, value in RESULT.items() if key not in ("task", "problem")}
    markdown = render_summary({**older, "baseline_metrics": None})
    assert "| roc_auc ↑ | 0.7500 |" in markdown and "| task | - |" in markdown
    assert render_summary({"env": "dev"}).count("_No ") == 2  # no gate, no metrics


def test_other_sections_are_rendered_as_tables():
    checks = {"status": "passed", "expectations": 12, "failed": []}
    markdown = render_summary({**RESULT, "checks": checks})
    assert "| checks | |" in markdown
    assert "| expectations | 12 |" in markdown and "| failed | - |" in markdown


def test_each_suite_says_whether_it_was_checked_or_its_verdict_reused():
    lines = ["orders: 12 expectations passed on 80 rows", "model_input: 9 expectations passed on "
             "80 rows (the verdict of run abc: same rows, suite and libraries)"]  # fmt: skip
    markdown = render_summary({**RESULT, "validation": lines})
    assert (
        "Data validation:\n- orders: 12 expectations passed on 80 rows\n- model_input" in markdown
    )
    assert "(the verdict of run abc: same rows, suite and libraries)" in markdown


def test_a_dirty_tree_is_flagged():
    lineage = {**RESULT["lineage"], "git.dirty": "true"}
    assert "(dirty tree)" in render_summary({**RESULT, "lineage": lineage})


def test_the_held_out_rows_are_named_by_their_split():
    assert "| held out | - |" in render_summary(RESULT)  # a result from before split kinds
    hashed = {**RESULT["lineage"], "split.kind": "hash"}
    assert "| held out | a seeded hash of the key |" in render_summary(
        {**RESULT, "lineage": hashed}
    )
    timed = {**RESULT["lineage"], "split.kind": "time", "split.time_column": "signed_up",
             "split.cutoff": "2024-05-01T00:00:00Z"}  # fmt: skip
    assert "| held out | the newest by signed_up, from 2024-05-01T00:00:00Z |" in render_summary(
        {**RESULT, "lineage": timed}
    )


def test_read_result_takes_the_last_json_line(tmp_path):
    output = tmp_path / "staging.out"
    output.write_text(
        "Trained churn_staging version 7 in env staging.\n"
        '  {not json}\n{"model_version": "6"}\n'
        f"{json.dumps(RESULT)}\n\n"
    )
    assert read_result(output) == RESULT
    assert result_field(RESULT, "model_version") == "7"
    assert result_field(RESULT, "metrics.roc_auc") == "0.75"
    with pytest.raises(ConfigError, match="no key 'gate.status'"):
        result_field(RESULT, "gate.status")


@pytest.mark.parametrize("content", [None, "ml-project: data error: column x3 missing\n"])
def test_read_result_without_a_result_is_a_usage_error(tmp_path, content):
    output = tmp_path / "staging.out"
    if content is not None:
        output.write_text(content)
    with pytest.raises(ConfigError, match=str(output)) as raised:
        read_result(output)
    assert raised.value.exit_code == 2


@pytest.fixture
def runner():
    """The CLI in this process, which it treats as its own (environment defaults, signal
    handlers): both restored after, so no later test or subprocess inherits them."""
    environment = dict(os.environ)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield CliRunner()
    os.environ.clear()
    os.environ.update(environment)
    for number, handler in handlers.items():
        signal.signal(number, handler)


def test_summary_command_writes_markdown_and_fields(tmp_path, runner):
    output = tmp_path / "staging.out"
    output.write_text(json.dumps(RESULT) + "\n")
    markdown = tmp_path / "out" / "summary.md"
    done = runner.invoke(cli, ["summary", "--input", str(output), "--output", str(markdown)])
    assert done.exit_code == 0, done.output
    assert markdown.read_text() == render_summary(RESULT)
    done = runner.invoke(cli, ["summary", "--input", str(output), "--field", "model_version"])
    assert (done.exit_code, done.output) == (0, "7\n")
    done = runner.invoke(cli, ["summary", "--input", str(tmp_path / "missing.out")])
    assert done.exit_code == 2
