"""The model card (pure): a version's facts in, Markdown for its description and a
self-contained HTML page out, for each task kind, passed or refused."""

import base64
import html
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml_project import gate, metrics, model_card
from ml_project.model_card import CardFacts, Plot, TimeRange
from ml_project.settings import GateSettings
from ml_project.vocabulary import TASKS
from tests.conftest import ROOT

# held-out metrics of a useful model and of one that ignores the features, per task
GOOD = {
    "binary": {"roc_auc": 0.81, "pr_auc": 0.77, "f1": 0.7, "accuracy": 0.72, "log_loss": 0.52,
               "brier": 0.17},
    "multiclass": {"accuracy": 0.74, "balanced_accuracy": 0.73, "f1_macro": 0.72,
                   "roc_auc_ovr": 0.88, "log_loss": 0.66},
    "regression": {"r2": 0.83, "rmse": 1.31, "mae": 1.02, "median_ae": 0.85, "rmsle": 0.11,
                   "mape": 0.09},
}  # fmt: skip
BLIND = {
    "binary": {"roc_auc": 0.5, "pr_auc": 0.49, "f1": 0.65, "accuracy": 0.49, "log_loss": 0.69,
               "brier": 0.25},
    "multiclass": {"accuracy": 0.4, "balanced_accuracy": 0.33, "f1_macro": 0.19,
                   "roc_auc_ovr": 0.5, "log_loss": 1.08},
    "regression": {"r2": 0.0, "rmse": 3.2, "mae": 2.6, "median_ae": 2.2, "rmsle": 0.27,
                   "mape": 0.24},
}  # fmt: skip
PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
PNG = b"\x89PNG\r\n\x1a\nnot really a picture"
RUN = "0123456789abcdef0123456789abcdef"
TAGS = {
    "data.tables": "orders,customers",
    "data.table.orders.path": "/data/orders.csv",
    "data.table.orders.sha256": "a" * 64,
    "data.table.orders.rows": "3000",
    "data.table.customers.path": "/data/customers.parquet",
    "data.table.customers.sha256": "b" * 64,
    "data.table.customers.rows": "120",
    "data.rows_train": "2400",
    "data.digest": "c" * 64,
    "split.kind": "hash",
    "git.commit": "d" * 40,
    "git.dirty": "false",
    "git.branch": "main",
    "config.hash": "e" * 64,
    "seed": "42",
    "run_id": RUN,
}


def verdict(task, *, champion=None, floor=None):
    settings = GateSettings(
        primary_metric=PRIMARY[task],
        tolerance=0.01,
        compare_with_champion=True,
        min_test_rows=100,
        floors=floor or {},
    )
    return gate.judge(
        GOOD[task], settings, task=task, rows=600, scores=np.linspace(0, 1, 600),
        staged=None, baseline_metrics=BLIND[task], champion=champion,
    )  # fmt: skip


def facts(task="binary", **changes):
    values = dict(
        model_name=f"demo_{task}_dev", version="7", env="dev", problem=f"demo_{task}",
        task=task, label="outcome", run_id=RUN, experiment_id="3",
        verdict=verdict(task), baseline_metrics=BLIND[task],
        metric_names=list(metrics.metrics_of(task)), held_out_rows=600, tags=TAGS,
        plots=[Plot("eval_roc_curve_plot.png", PNG)],
    )  # fmt: skip
    return CardFacts(**(values | changes))


def visible(markdown: str) -> str:
    """Roughly what a Markdown renderer shows: escapes and entities undone."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


@pytest.mark.parametrize("task", TASKS)
def test_the_card_of_each_task_says_what_it_predicts_its_data_metrics_and_rebuild(task):
    card = facts(task)
    text = visible(model_card.markdown(card))
    assert f"predicts `outcome`, a {task} task of problem `demo_{task}`" in text
    assert "ml-project reproduce --model-uri models:/demo_" + task + "_dev/7" in text
    assert "| `orders` | `/data/orders.csv` | 3000 | `aaaaaaaaaaaaaaaa` |" in text
    assert "| `customers` | `/data/customers.parquet` | 120 |" in text
    assert "2400 train rows; 600 held-out rows" in text
    for name, value in GOOD[task].items():  # each metric, next to the feature-blind model's
        assert re.search(rf"\| `{name}`[^|]* \| {value:.4f} \| {BLIND[task][name]:.4f} \|", text)
    assert f"`{PRIMARY[task]}` (primary)" in text
    assert "Gate: passed" in text and "It passed the gate" in text
    for check in card.verdict.checks:
        assert check.message in text
    assert f"`{'d' * 40}`" in text and "| dirty tree | no |" in text
    assert f"get-artifact?path=eval_roc_curve_plot.png&run_uuid={RUN}" in text
    assert f"#/experiments/3/runs/{RUN}/artifacts/model_card/version-7.html" in text
    bundled = [path.name for path in (ROOT / "problems").iterdir() if path.is_dir()]
    assert not [name for name in bundled if name in text]  # the platform names no example


def test_a_refused_version_says_refused_and_why():
    refused = verdict("binary", floor={"roc_auc": 0.9})
    text = visible(model_card.markdown(facts(verdict=refused)))
    assert text.startswith("### Model card: refused")
    assert "was refused by the gate: it holds no alias and never serves" in text
    assert "Gate: refused" in text
    assert "FAILED `floor`: roc_auc 0.8100 < floor 0.9 (gate.floors.roc_auc)" in text
    assert "Failed: roc_auc 0.8100 < floor 0.9 (gate.floors.roc_auc)." in text


def test_the_champion_comparison_is_a_column_of_the_metrics():
    champion = gate.Champion(
        version="4",
        champion={"rmse": 1.35, "r2": 0.8},
        challenger={"rmse": 1.3, "r2": 0.84},
        rows=550,
        excluded_rows=50,
    )
    card = facts("regression", verdict=verdict("regression", champion=champion))
    text = visible(model_card.markdown(card))
    head = "| metric | this version | feature-blind model | champion v4 | this version there |"
    assert head in text
    assert "| `rmse` (primary) | 1.3100 | 3.2000 | 1.3500 | 1.3000 |" in text
    assert "| `mae` | 1.0200 | 2.6000 | - | - |" in text
    assert "on the same 550 held-out rows neither trained on" in text
    assert "better than the champion version 4" in text


def test_a_champion_that_could_not_be_compared_is_said_so():
    champion = gate.Champion(version="4", error="its run ID is gone")
    card = facts(verdict=verdict("binary", champion=champion))
    text = visible(model_card.markdown(card))
    assert "Champion version 4 not compared: its run ID is gone" in text
    assert "Failed: champion version 4 could not be compared: its run ID is gone." in text
    assert "Gate: refused" in text


def test_a_card_without_plots_says_why():
    skipped = {**TAGS, "evaluation.skipped": "the held-out rows hold no c"}
    text = visible(model_card.markdown(facts("multiclass", plots=[], tags=skipped)))
    assert "No plots: the evaluation was skipped: the held-out rows hold no c." in text
    assert "get-artifact" not in text


def test_a_copy_and_a_dirty_tree_show_in_the_lineage():
    tags = {**TAGS, "git.dirty": "true", "copied_from.model": "demo_dev",
            "copied_from.version": "3", "run_id": "f" * 32}  # fmt: skip
    text = visible(model_card.markdown(facts(tags=tags)))
    assert "| dirty tree | yes: uncommitted changes are not in the commit |" in text
    assert "| copied from | `demo_dev` v3 |" in text
    assert f"| training run | `{'f' * 32}` |" in text and f"| gate run | `{RUN}` |" in text


def test_a_time_split_and_time_ranges_show_in_the_data():
    tags = {**TAGS, "split.kind": "time", "split.time_column": "opened_at",
            "split.cutoff": "2024-03-01T00:00:00Z"}  # fmt: skip
    ranges = [TimeRange("opened_at", ("2024-01-01", "2024-02-29"), ("2024-03-01", "2024-03-31"))]
    text = visible(model_card.markdown(facts(tags=tags, times=ranges)))
    assert "the newest rows by `opened_at` held out, from 2024-03-01T00:00:00Z" in text
    assert (
        "Time range of `opened_at`: train 2024-01-01 to 2024-02-29; held-out 2024-03-01 to "
        "2024-03-31." in text
    )


def test_time_ranges_from_the_profile_and_the_held_out_rows():
    held = pd.DataFrame(
        {"opened_at": ["2024-03-02T10:00:00Z", "2024-03-09T00:00:00Z", None], "year": [3, 1, 2]}
    )
    profile = {
        "features": {
            "opened_at": {"kind": "time", "timestamps": True, "min": 1704067200.0,
                          "max": 1709164800.0},
            "year": {"kind": "time", "timestamps": False, "min": 1990.0, "max": 2001.0},
        }
    }  # fmt: skip
    opened, year, gone = model_card.time_ranges(["opened_at", "year", "closed_at"], held, profile)
    assert opened.train == ("2024-01-01T00:00:00Z", "2024-02-29T00:00:00Z")
    assert opened.held_out == ("2024-03-02T10:00:00Z", "2024-03-09T00:00:00Z")
    assert year == TimeRange("year", ("1990", "2001"), ("1", "3"))
    assert gone == TimeRange("closed_at", None, None)
    text = visible(model_card.markdown(facts(times=[gone])))
    assert "Time range of `closed_at`: unknown." in text


def test_a_long_card_is_cut_at_the_limit_and_says_where_the_whole_one_is():
    long = {**TAGS, "data.tables": ",".join(f"t{i}" for i in range(200))}
    card = facts(tags=long)
    whole = model_card.markdown(card, limit=10**6)
    cut = model_card.markdown(card)
    assert len(whole) > model_card.MAX_DESCRIPTION >= len(cut)
    assert cut.splitlines()[-1].startswith(
        f"(cut at the {model_card.MAX_DESCRIPTION} characters MLflow keeps) The whole card"
    )
    assert "model_card/version-7.html" in cut.splitlines()[-1]
    assert "ml-project reproduce --model-uri models:/demo_binary_dev/7" in cut  # first kept


def test_a_plot_link_is_a_url_relative_to_the_ui():
    link = model_card.artifact_link(RUN, "plots/a b#1.png")
    assert link == f"get-artifact?path=plots/a%20b%231.png&run_uuid={RUN}"


def test_markdown_text_is_escaped_outside_code():
    assert model_card.md_text("a_b|c <x> `p_q|r`") == r"a\_b\|c &lt;x&gt; `p_q/r`"


@pytest.mark.parametrize("task", TASKS)
def test_the_html_card_is_self_contained_and_escaped(task):
    hostile = {**TAGS, "data.table.orders.path": "/data/<script>alert(1)</script>.csv"}
    page = model_card.html_page(facts(task, tags=hostile))
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</body></html>")
    assert "<script" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing to download
    assert "<link" not in page and "@import" not in page
    inlined = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert f'src="{inlined}"' in page
    assert "<pre>ml-project reproduce --model-uri models:/demo_" + task + "_dev/7</pre>" in page
    assert "<h2>Gate: passed</h2>" in page
    for name in GOOD[task]:
        assert f"<code>{name}</code>" in page


def test_show_says_where_each_version_card_is():
    from ml_project.promotion import Description, VersionView
    from ml_project.views import SHOW_WIDTH, show_text

    version = VersionView(
        version="7", aliases=["champion"], validation_status="passed", validation_reasons="",
        metrics={"roc_auc": 0.81}, compared_with="", created="2026-12-07T08:00:00+00:00",
        lineage={}, copied_from={},
    )  # fmt: skip
    described = Description(
        env="dev", problem="p", task="binary", primary_metric="roc_auc", model_name="m_dev",
        tracking_uri="sqlite:///mlflow.db", aliases={"champion": "7"}, versions=[version],
        history=[],
    )  # fmt: skip
    lines = show_text(described, history_lines=5).splitlines()
    at = next(index for index, line in enumerate(lines) if line.startswith("  cards "))
    said = " ".join(line.strip() for line in lines[at : at + 2])
    assert "description on its MLflow UI page" in said
    assert "model_card/version-<n>.html of the run that judged it" in said
    assert all(len(line) <= SHOW_WIDTH for line in lines)
    empty = show_text(replace(described, versions=[]), history_lines=5)
    assert "cards" not in empty


def test_the_review_tags_sort_before_every_other_tag_and_say_verdict_code_data_rebuild():
    champion = gate.Champion(
        version="4", champion={"rmse": 1.35}, challenger={"rmse": 1.3}, rows=550
    )
    tags = {**TAGS, "git.dirty": "true", "git.tag": "v1.2.0"}
    card = facts("regression", verdict=verdict("regression", champion=champion), tags=tags)
    review = model_card.review_tags(card)
    # MLflow's UI sorts a version's tags by key, character by character (lodash sortBy)
    every = sorted([*review, *TAGS, "validation_status", "model_card", "gate.rmse"])
    assert every[: len(review)] == list(review) == sorted(review)
    assert review == {
        "Commit": "dddddddddddd (v1.2.0), dirty tree",
        "Data": "digest cccccccccccc, 2400 train and 600 held-out rows",
        "Rebuild": "ml-project reproduce --model-uri models:/demo_regression_dev/7",
        "Verdict": "passed: rmse 1.3100, champion v4 1.3500",
    }


def test_the_review_verdict_of_a_refused_version_without_a_champion():
    card = facts(verdict=verdict("binary", floor={"roc_auc": 0.9}))
    review = model_card.review_tags(card)
    assert review["Verdict"] == "refused: roc_auc 0.8100"
    assert review["Commit"] == "d" * 12
