"""The problem interface: loading problems/<name>/problem.py, its defaults and its errors."""

import shutil
import sys
from pathlib import Path

import pytest
import skops.io

from ml_project import estimators, input_rules, pipeline
from ml_project.errors import ConfigError, DataError
from ml_project.problem import importable, load_problem
from tests.synthetic import KINDS, make_table, synthetic_settings, write_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path) -> Path:
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    (tmp_path / "problems").mkdir()
    (tmp_path / "problems" / "__init__.py").write_text("")
    for kind in KINDS:
        write_problem(tmp_path, kind, rows=300)
    yield tmp_path
    for name in [n for n in sys.modules if n.split(".")[0] == "problems"]:
        del sys.modules[name]


def fast_settings(project, kind="binary", overrides=(), **kwargs):
    """A synthetic problem's settings with a few trees: enough for a unit test."""
    return synthetic_settings(project, kind, ("params.max_iter=15", *overrides), **kwargs)


def code(project, kind, text):
    (project / "problems" / f"synthetic_{kind}" / "problem.py").write_text(text)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_problem_gets_the_only_table_its_label_column_and_the_default_model(project, kind):
    settings = fast_settings(project, kind)
    problem = load_problem(settings, project)
    table = make_table(kind, 300)
    records = problem.records({"only": table})
    assert records is table
    assert problem.label(records, "target").equals(table["target"])
    model = problem.build_model(settings)
    assert type(model[-1]).__name__.startswith("HistGradientBoosting")
    assert type(model[0]).__name__ == "InputRules" and model[0].rules  # the suite's hard rules
    prepared = pipeline.prepare_data(settings, problem, {"only": table})
    trained = pipeline.fit_and_score(settings, problem, prepared)
    # the default model's pickled types are all on the platform's allow-list
    dumped = skops.io.dumps(trained.model)
    trusted = [*estimators.TRUSTED_TYPES, *input_rules.TRUSTED_TYPES]
    assert set(skops.io.get_untrusted_types(data=dumped)) <= set(trusted)


def test_several_tables_need_a_records_function(project):
    problem = load_problem(fast_settings(project), project)
    with pytest.raises(ConfigError, match="reads 2 tables .* defines no records"):
        problem.records({"a": make_table("binary", 5), "b": make_table("binary", 5)})


def test_the_problems_functions_and_params_are_used(project):
    code(
        project,
        "binary",
        "from pydantic import BaseModel, ConfigDict\n"
        "class Params(BaseModel):\n"
        "    model_config = ConfigDict(extra='forbid')\n"
        "    cut: float\n    max_iter: int = 10\n    learning_rate: float\n"
        "def records(tables, params):\n"
        "    return tables['a'].merge(tables['b'], on='id')\n"
        "def label(records, params):\n"
        "    return (records['x1'] > params.cut).astype('int64')\n",
    )
    settings = fast_settings(project, overrides=("params.cut=0.5",))
    problem = load_problem(settings, project)
    assert problem.params.cut == 0.5 and problem.params.max_iter == 15
    a, b = make_table("binary", 10)[["id", "x1"]], make_table("binary", 10)[["id", "colour"]]
    records = problem.records({"a": a, "b": b})
    assert list(records.columns) == ["id", "x1", "colour"]
    assert problem.label(records, "ignored").tolist() == (a["x1"] > 0.5).astype(int).tolist()


def test_params_the_problem_refuses_name_the_key_and_the_file(project):
    code(
        project,
        "binary",
        "from pydantic import BaseModel, ConfigDict\n"
        "class Params(BaseModel):\n"
        "    model_config = ConfigDict(extra='forbid')\n"
        "    max_iter: int\n",
    )
    expected = r"problem\.py\): params\.learning_rate \(set in \S+synthetic_binary/environments/base\.yaml\): Extra"  # noqa: E501
    with pytest.raises(ConfigError, match=expected):
        load_problem(fast_settings(project), project)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("import not_a_module_anywhere\n", r"problem\.py cannot be imported: ModuleNotFoundError"),
        ("def records(tables, params):\n    return 3\n", "returned int, not a pandas DataFrame"),
    ],
)
def test_faults_in_the_users_code_are_one_paragraph(project, text, message):
    code(project, "binary", text)
    with pytest.raises(ConfigError, match=message):
        load_problem(fast_settings(project), project).records({"t": make_table("binary", 5)})


def test_a_missing_problem_module_is_named(project):
    (project / "problems" / "synthetic_binary" / "problem.py").unlink()
    with pytest.raises(ConfigError, match="problem.py does not exist"):
        load_problem(fast_settings(project), project)


def test_each_project_imports_its_own_problems(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    shutil.copytree(project, other, dirs_exist_ok=True)
    code(project, "binary", "WHO = 'first'\n")
    code(other, "binary", "WHO = 'second'\n")
    assert load_problem(fast_settings(project), project).module.WHO == "first"
    assert load_problem(fast_settings(other), other).module.WHO == "second"
    importable(project)
    assert sys.path[0] == str(project.resolve())


def test_the_split_is_refused_before_fitting_when_a_side_would_be_empty_or_one_class(project):
    settings = fast_settings(project, overrides=("data.sample_fraction=0.001",))
    problem = load_problem(settings, project)
    with pytest.raises(ConfigError, match=r"data\.sample_fraction=0\.001 .* leave the \w+ side"):
        pipeline.prepare_data(settings, problem, {"t": make_table("binary", 300)})
    one_class = make_table("binary", 300).assign(target="yes")
    with pytest.raises(DataError, match="has one class"):
        pipeline.prepare_data(fast_settings(project), problem, {"t": one_class})
    three = make_table("multiclass", 300)
    with pytest.raises(ConfigError, match="task: binary, but the label target has 3 classes"):
        pipeline.prepare_data(fast_settings(project), problem, {"t": three})


def test_duplicated_keys_are_refused(project):
    settings = fast_settings(project)
    table = make_table("binary", 300)
    table.loc[5, "id"] = table.loc[6, "id"]
    with pytest.raises(DataError, match="rows share their key"):
        pipeline.prepare_data(settings, load_problem(settings, project), {"t": table})


def test_the_default_models_hyper_parameters_are_checked_when_settings_load(project):
    expected = r"DefaultParams\): params\.max_iter \(set in the command line \(--set\)\): Input"
    with pytest.raises(ConfigError, match=expected):
        load_problem(fast_settings(project, overrides=("params.max_iter=zero",)), project)
    with pytest.raises(
        ConfigError, match=r"params\.learning_rate \(set in .*\): Input should be greater"
    ):
        load_problem(fast_settings(project, overrides=("params.learning_rate=0",)), project)
    # a typo is refused, not ignored: knobs of the problem's own need its own Params
    with pytest.raises(
        ConfigError, match=r"params\.max_iters \(set in .*\): Extra inputs are not permitted"
    ):
        load_problem(fast_settings(project, overrides=("params.max_iters=50",)), project)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_a_class_too_rare_to_learn_or_judge_is_refused_whatever_the_seed(project, seed):
    """3 rows of a class in 300: held out or not depends on the seed; the refusal does not."""
    settings = fast_settings(project, "multiclass", seed=seed)
    table = make_table("multiclass", 300)
    table.loc[:2, "target"] = "rare"
    problem = load_problem(settings, project)
    with pytest.raises(DataError, match=r"class\(es\) rare \(3 rows\) .* fewer than split\."
                                        r"min_class_rows=10 of the 300 rows used"):  # fmt: skip
        pipeline.prepare_data(settings, problem, {"t": table})
    table.loc[:29, "target"] = "rare"  # 30 rows: enough for the default, on both sides
    assert pipeline.prepare_data(settings, problem, {"t": table}).rows["used"] == 300


WITHIN_ONE = (
    "import numpy as np\n"
    "from ml_project.metrics import Metric\n"
    "def _within_one(y_true, predictions):\n"
    "    return float(np.mean(np.abs(predictions.prediction - y_true) <= 1.0))\n"
    "METRICS = [Metric('within_one', higher_is_better=True, compute=_within_one)]\n"
)


def test_a_problems_own_metric_is_computed_gated_and_may_be_the_primary_one(project):
    code(project, "regression", WITHIN_ONE)
    settings = fast_settings(
        project, "regression",
        overrides=("gate.floors.within_one=0.2", "gate.primary_metric=within_one"),
    )  # fmt: skip
    problem = load_problem(settings, project)
    assert list(problem.metrics) == ["within_one"]
    table = make_table("regression", 300)
    prepared = pipeline.prepare_data(settings, problem, {"t": table})
    trained = pipeline.fit_and_score(settings, problem, prepared)
    assert 0 < trained.metrics["within_one"] <= 1 and "rmse" in trained.metrics
    assert trained.baseline_metrics["within_one"] < trained.metrics["within_one"]


def test_a_gate_on_an_unknown_metric_is_refused_once_the_problem_is_loaded(project):
    settings = fast_settings(project, "regression", overrides=("gate.floors.within_one=0.2",))
    with pytest.raises(ConfigError) as caught:
        load_problem(settings, project)
    message = str(caught.value)
    assert "gate.floors.within_one (set in the command line (--set)): a regression task has no " \
        "metric 'within_one'" in message  # fmt: skip
    assert "METRICS in " in message and "synthetic_regression/problem.py" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("METRICS = ['rmse']\n", r"METRICS must be a list of ml_project.metrics.Metric"),
        (WITHIN_ONE.replace("'within_one'", "'rmse'"), r"the name 'rmse' is taken"),
        (WITHIN_ONE.replace("'within_one'", "'Within one'"), r"must be lower-case letters"),
    ],
)
def test_a_problems_metrics_are_checked_with_the_file_named(project, text, message):
    code(project, "regression", text)
    with pytest.raises(ConfigError, match=r"synthetic_regression/problem\.py: METRICS"):
        load_problem(fast_settings(project, "regression"), project)
    with pytest.raises(ConfigError, match=message):
        load_problem(fast_settings(project, "regression"), project)


def test_a_problems_metric_that_breaks_is_named_with_its_file(project):
    code(project, "regression", WITHIN_ONE.replace("return float(", "return float(1 / 0 + "))
    problem = load_problem(fast_settings(project, "regression"), project)
    from ml_project import metrics

    with pytest.raises(ConfigError, match=r"problem\.py: METRICS: within_one failed: ZeroDivision"):
        metrics.compute("regression", [1.0], metrics.Predictions([1.0]), problem.metrics)
