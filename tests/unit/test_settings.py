"""The settings: layers, precedence, errors naming key and origin, per-task gate checks."""

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from ml_project.errors import ConfigError
from ml_project.problem import load_problem
from ml_project.scaffold import with_default_problem
from ml_project.settings import (
    apply_assignment,
    deep_merge,
    load_settings,
    parse_assignment,
)
from tests.synthetic import write_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path) -> Path:
    """The project's environments/ and a synthetic problem of each kind, in a tmp folder."""
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    for kind in ("binary", "multiclass", "regression"):
        write_problem(tmp_path, kind, rows=200)
    return tmp_path


def overlay(root: Path, problem: str, env: str, text: str) -> None:
    (root / "problems" / problem / "environments" / f"{env}.yaml").write_text(text)


def test_deep_merge_merges_dicts_and_replaces_lists_and_scalars():
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2, 3], "s": "base"}
    merged = deep_merge(base, {"a": {"y": 20}, "l": [9], "s": "over"})
    assert merged == {"a": {"x": 1, "y": 20}, "l": [9], "s": "over"}
    assert base["a"]["y"] == 2  # inputs untouched


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_each_env_of_each_problem_resolves(project, env, kind):
    settings = load_settings(env, problem=f"synthetic_{kind}", root=project)
    assert (settings.env, settings.task, settings.problem) == (env, kind, f"synthetic_{kind}")
    assert settings.model_name == settings.experiment_name == f"synthetic_{kind}_{env}"
    assert settings.features.columns == ["colour", "x1", "x2", "x3", "x4"]


def test_layers_project_then_problem_then_command_line(project):
    overlay(project, "synthetic_binary", "staging", "params: {max_iter: 7}\nseed: 5\n")
    settings = load_settings("staging", problem="synthetic_binary", root=project)
    # problem overlay over problem base over project overlay over project base
    assert settings.params == {"max_iter": 7, "learning_rate": 0.1}
    assert settings.seed == 5
    assert settings.lineage.require_clean_tree  # project base; only dev relaxes it
    assert not load_settings(
        "dev", problem="synthetic_binary", root=project
    ).lineage.require_clean_tree
    cli = load_settings(
        "staging", problem="synthetic_binary", root=project,
        overrides=("params.max_iter=9", "data.sample_fraction=0.2"), seed=11,
    )  # fmt: skip
    assert (cli.params["max_iter"], cli.data.sample_fraction, cli.seed) == (9, 0.2, 11)


def test_the_project_setting_chooses_the_problem(project):
    base = project / "environments" / "base.yaml"
    # whatever the project's default is (a fork may have dropped the examples)
    base.write_text(with_default_problem(base.read_text(), "synthetic_regression")[0])
    assert load_settings("dev", root=project).task == "regression"
    with pytest.raises(ConfigError, match="no problem 'nothing'.*synthetic_binary"):
        load_settings("dev", problem="nothing", root=project)
    with pytest.raises(ConfigError, match="must name a folder"):
        load_settings("dev", problem="Bad-Name", root=project)


def test_settings_are_frozen(project):
    settings = load_settings("dev", problem="synthetic_binary", root=project)
    with pytest.raises(ValidationError):
        settings.seed = 3


def test_config_hash_follows_content(project):
    a = load_settings("dev", problem="synthetic_binary", root=project)
    assert (
        a.config_hash()
        == load_settings("dev", problem="synthetic_binary", root=project).config_hash()
    )
    assert (
        a.config_hash()
        != load_settings("dev", problem="synthetic_binary", seed=1, root=project).config_hash()
    )


def test_unknown_key_names_key_and_file(project):
    overlay(project, "synthetic_binary", "dev", "data:\n  sample_fractoin: 0.5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", problem="synthetic_binary", root=project)
    message = str(caught.value)
    assert "data.sample_fractoin" in message and "synthetic_binary/environments/dev.yaml" in message


def test_wrong_type_names_key_and_file(project):
    overlay(project, "synthetic_binary", "dev", "split:\n  test_fraction: many\n")
    with pytest.raises(ConfigError, match=r"split\.test_fraction .*dev\.yaml"):
        load_settings("dev", problem="synthetic_binary", root=project)


def test_an_error_set_on_the_command_line_blames_the_command_line(project):
    with pytest.raises(ConfigError, match=r"split\.test_fraction \(set in the command line"):
        load_settings(
            "dev", problem="synthetic_binary", root=project, overrides=("split.test_fraction=2",)
        )


@pytest.mark.parametrize(
    "override",
    ["gate.tolerance=.inf", "monitor.psi_alert=inf", "monitor.psi_alert=.nan",
     "split.test_fraction=nan", "params.max_iter=.inf"],
)  # fmt: skip
def test_infinity_and_nan_are_refused(project, override):
    """`inf` passes gt=0 and nan every comparison: both refused, naming the key."""
    key = override.split("=")[0]
    settings = None
    with pytest.raises(ConfigError, match=rf"{key} \(set in the command line \(--set\)\)"):
        settings = load_settings("dev", problem="synthetic_binary", root=project,
                                 overrides=(override,))  # fmt: skip
        load_problem(settings, project)  # params are the problem's: checked when it loads


def test_malformed_yaml_names_file(project):
    overlay(project, "synthetic_binary", "dev", "params: [unclosed\n")
    with pytest.raises(ConfigError, match="dev.yaml is not valid YAML"):
        load_settings("dev", problem="synthetic_binary", root=project)


def test_unknown_env_and_missing_project_overlay(project):
    with pytest.raises(ConfigError, match="Unknown env 'qa'"):
        load_settings("qa", problem="synthetic_binary", root=project)
    (project / "environments" / "staging.yaml").unlink()
    with pytest.raises(ConfigError, match="staging.yaml does not exist"):
        load_settings("staging", problem="synthetic_binary", root=project)


def test_assignment_parsing_and_unknown_keys():
    assert parse_assignment("params.max_iter=50") == (("params", "max_iter"), 50)
    assert parse_assignment("data.tables.orders=a.csv") == (("data", "tables", "orders"), "a.csv")
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        parse_assignment("params.max_iter")
    config = {"split": {"test_fraction": 0.2}, "params": {"max_iter": 1}}
    assert apply_assignment(config, ("split", "test_fraction"), 0.3)["split"] == {
        "test_fraction": 0.3
    }
    with pytest.raises(ConfigError, match="no key 'fraction'"):
        apply_assignment(config, ("split", "fraction"), 3)
    with pytest.raises(ConfigError, match="that is a section"):
        apply_assignment(config, ("split",), 3)
    # the problem's own params take new keys (its Params class checks them)
    assert apply_assignment(config, ("params", "depth"), 3)["params"] == {"max_iter": 1, "depth": 3}


def test_overlap_between_categorical_and_numeric_is_rejected(project):
    with pytest.raises(ConfigError, match="both categorical and numeric"):
        load_settings(
            "dev", problem="synthetic_binary", root=project,
            overrides=("features.numeric=[colour, x1]",),
        )  # fmt: skip


def test_the_label_cannot_be_a_feature(project):
    with pytest.raises(ConfigError, match="label 'target' is also a feature"):
        load_settings(
            "dev", problem="synthetic_binary", root=project,
            overrides=("features.numeric=[x1, target]",),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("problem", "override", "message"),
    [
        ("synthetic_regression", "gate.floors={roc_auc: 0.7}",
         r"gate\.floors\.roc_auc \(set in \S+dev\.yaml\): a regression task has no "
         r"metric 'roc_auc'"),
        ("synthetic_binary", "gate.floors={brier: 0.2}",
         r"gate\.floors\.brier \(set in \S+\): brier is lower is better, so it takes a limit under "
         r"gate\.ceilings"),
        ("synthetic_binary", "gate.ceilings={roc_auc: 0.9}", r"gate\.ceilings\.roc_auc"),
        ("synthetic_multiclass", "gate.primary_metric=rmse",
         r"gate\.primary_metric \(set in \S+\): a multiclass task has no metric 'rmse'"),
    ],
)  # fmt: skip
def test_gate_metrics_are_checked_against_the_tasks_registry(project, problem, override, message):
    folder = project / "problems" / problem / "environments"
    key, _, value = override.partition("=")
    section, _, name = key.partition(".")
    (folder / "dev.yaml").write_text(f"{section}:\n  {name}: {value}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings("dev", problem=problem, root=project)


@pytest.mark.parametrize("name", ["has space", "-dash", "a/b", ""])
def test_a_name_mlflow_would_refuse_is_refused_when_settings_load(project, name):
    overlay(project, "synthetic_binary", "dev", f"name: '{name}'\n")
    with pytest.raises(ConfigError, match=r"^Invalid settings: name "):
        load_settings("dev", problem="synthetic_binary", root=project)


def test_a_cross_key_error_names_the_file_that_set_it(project):
    overlay(project, "synthetic_regression", "dev", "gate:\n  floors: {roc_auc: 0.7}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", problem="synthetic_regression", root=project)
    assert "gate.floors.roc_auc (set in " in str(caught.value)
    assert "synthetic_regression/environments/dev.yaml" in str(caught.value)


def test_an_unknown_table_names_the_problems_tables(project):
    with pytest.raises(ConfigError, match=r"--table other=...: the problem has no table 'other'; "
                       r"its tables: synthetic_binary"):  # fmt: skip
        load_settings(
            "dev", problem="synthetic_binary", root=project,
            overrides=('data.tables.other="x.csv"',),
        )  # fmt: skip


def test_floors_and_ceilings_take_new_metrics_from_the_command_line(project):
    settings = load_settings(
        "dev", problem="synthetic_binary", root=project, overrides=("gate.floors.pr_auc=0.5",)
    )
    assert settings.gate.floors == {"roc_auc": 0.7, "pr_auc": 0.5}


def test_a_missing_key_says_where_it_belongs(project):
    base = project / "problems" / "synthetic_binary" / "environments" / "base.yaml"
    base.write_text(base.read_text().replace("monitor:\n  max_quality_drop: 0.05\n", ""))
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", problem="synthetic_binary", root=project)
    assert "monitor.max_quality_drop: missing (set it in " in str(caught.value)
    assert "synthetic_binary/environments/base.yaml" in str(caught.value)


@pytest.mark.parametrize("key", ["gate.tolerance", "monitor.max_quality_drop"])
def test_a_tolerance_in_the_metrics_units_is_refused_for_a_metric_with_units(project, key):
    """rmse's tolerance is a fraction of the champion's value: an old config's 50 (dollars)
    would accept a model 50 times worse, so it is refused, not read as 5000%."""
    problem = "synthetic_regression"
    assert load_settings("dev", problem=problem, overrides=(f"{key}=0.05",), root=project)
    with pytest.raises(ConfigError, match=rf"{key} .*: 50 is a fraction of the recorded rmse"):
        load_settings("dev", problem=problem, overrides=(f"{key}=50",), root=project)
    binary = load_settings("dev", problem="synthetic_binary", overrides=(f"{key}=1",), root=project)
    assert binary  # roc_auc is bounded: its tolerance is in its own terms
