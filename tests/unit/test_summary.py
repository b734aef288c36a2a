"""The CI job summary: Markdown from a training's --json result (hand-written results here;
tests/integration/test_tracking_server.py renders a real one)."""

import json

import pytest
from click.testing import CliRunner

from ml_project.cli import cli
from ml_project.errors import ConfigError
from ml_project.summary import read_result, render_summary, result_field

RESULT = {
    "env": "staging",
    "tracking_uri": "https://ci-bot:s3cret@mlflow.example.com/tracking",
    "experiment_id": "1",
    "run_id": "0123456789abcdef",
    "model_name": "flights_delay_staging",
    "model_version": "7",
    "model_uri": "models:/flights_delay_staging/7",
    "metrics": {"roc_auc": 0.75, "pr_auc": 0.5, "log_loss": 0.46, "brier": 0.15, "f1": 0.4},
    "rows": {"train": 26422, "test": 6586, "used": 33008, "labelled": 327346},
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
    assert markdown.startswith("## Training in staging: `flights_delay_staging` version 7\n")
    assert "_No quality gate result in this output._" in markdown
    assert "| roc_auc ↑ | 0.7500 |" in markdown and "| log_loss ↓ | 0.4600 |" in markdown
    assert "| train | 26,422 |" in markdown and "| labelled | 327,346 |" in markdown
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
    assert "✅ **Quality gate: passed**, compared with champion version 6 on `roc_auc`." in markdown
    assert "- roc_auc 0.7500 >= floor 0.7000\n- roc_auc within 0.01 of champion" in markdown
    assert "| held-out metric | this model | champion |" in markdown
    assert "| roc_auc ↑ | 0.7500 | 0.7481 |" in markdown
    assert "| log_loss ↓ | 0.4600 | - |" in markdown
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
    assert "| held-out metric | value |" in markdown


def test_other_sections_are_rendered_as_tables():
    validation = {"status": "passed", "expectations": 12, "failed": []}
    markdown = render_summary({**RESULT, "validation": validation})
    assert "| validation | |" in markdown
    assert "| expectations | 12 |" in markdown and "| failed | - |" in markdown


def test_a_dirty_tree_is_flagged():
    lineage = {**RESULT["lineage"], "git.dirty": "true"}
    assert "(dirty tree)" in render_summary({**RESULT, "lineage": lineage})


def test_read_result_takes_the_last_json_line(tmp_path):
    output = tmp_path / "staging.out"
    output.write_text(
        "Trained flights_delay_staging version 7 in env staging.\n"
        '  {not json}\n{"model_version": "6"}\n'
        f"{json.dumps(RESULT)}\n\n"
    )
    assert read_result(output) == RESULT
    assert result_field(RESULT, "model_version") == "7"
    assert result_field(RESULT, "metrics.roc_auc") == "0.75"
    with pytest.raises(ConfigError, match="no key 'gate.status'"):
        result_field(RESULT, "gate.status")


@pytest.mark.parametrize("content", [None, "ml-project: data error: column dep_time missing\n"])
def test_read_result_without_a_result_is_a_usage_error(tmp_path, content):
    output = tmp_path / "staging.out"
    if content is not None:
        output.write_text(content)
    with pytest.raises(ConfigError, match=str(output)) as raised:
        read_result(output)
    assert raised.value.exit_code == 2


def test_summary_command_writes_markdown_and_fields(tmp_path):
    output = tmp_path / "staging.out"
    output.write_text(json.dumps(RESULT) + "\n")
    runner = CliRunner()
    markdown = tmp_path / "out" / "summary.md"
    done = runner.invoke(cli, ["summary", "--input", str(output), "--output", str(markdown)])
    assert done.exit_code == 0, done.output
    assert markdown.read_text() == render_summary(RESULT)
    done = runner.invoke(cli, ["summary", "--input", str(output), "--field", "model_version"])
    assert (done.exit_code, done.output) == (0, "7\n")
    done = runner.invoke(cli, ["summary", "--input", str(tmp_path / "missing.out")])
    assert done.exit_code == 2
