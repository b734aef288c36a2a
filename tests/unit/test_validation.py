"""Reading suite files and filling their `$name` parameters (pure: no great-expectations)."""

from pathlib import Path

import pytest

from ml_project import features, validation
from ml_project.errors import ConfigError
from ml_project.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = {"min_rows": 10, "extra": ["ZZ", "QQ"], "mostly": 0.99}


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_parameters_are_filled_and_list_parameters_spliced(tmp_path):
    path = write(
        tmp_path,
        """
table: t
expectations:
  - type: expect_table_row_count_to_be_between
    kwargs: {min_value: $min_rows}
  - type: expect_column_values_to_be_in_set
    kwargs: {column: c, value_set: [AA, $extra], mostly: $mostly}
    meta: {why: known codes}
""",
    )
    spec = validation.read_suite(path, PARAMETERS)
    assert spec.table == "t" and spec.path == path
    first, second = spec.expectations
    assert first["kwargs"] == {"min_value": 10}
    assert second["kwargs"] == {"column": "c", "value_set": ["AA", "ZZ", "QQ"], "mostly": 0.99}
    assert second["meta"] == {"why": "known codes", "suite_item": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        ("table: t\nexpectations: []\n", "lists no expectations"),
        ("- a\n- b\n", "must be a mapping"),
        ("table: t\nsuite: x\nexpectations: [{type: e}]\n", "must be a mapping"),
        ("table: t\nexpectations: [{kwargs: {column: a}}]\n", "expectation 1: each expectation"),
        ("table: t\nexpectations: [{type: e, kwarg: {}}]\n", "unknown key(s) kwarg"),
        ("table: t\nexpectations: [{type: e, kwargs: [1]}]\n", "'kwargs' must be a mapping"),
        (
            "table: t\nexpectations: [{type: e, kwargs: {v: $min_row}}]\n",
            "unknown parameter $min_row",
        ),
        ("table: [unclosed\n", "is not valid YAML"),
    ],
)
def test_malformed_suites_are_refused_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        validation.read_suite(path, PARAMETERS)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_suite_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        validation.read_suite(tmp_path / "nope.yaml", PARAMETERS)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_parameters_come_from_the_env_settings(env):
    settings = load_settings(env, root=ROOT)
    parameters = validation.suite_parameters(settings)
    limits = settings.validation
    assert parameters["min_rows_flights"] == limits.min_rows_flights
    assert parameters["label_mostly"] == pytest.approx(1 - limits.max_label_null_fraction)
    assert parameters["model_columns"] == features.raw_columns(settings.features)
    assert parameters["key_columns"] == list(settings.data.key_columns)


def test_overlays_tighten_the_thresholds_and_may_add_carriers():
    dev, prod = (load_settings(env, root=ROOT).validation for env in ("dev", "prod"))
    assert prod.min_rows_flights > dev.min_rows_flights
    assert prod.max_label_null_fraction < dev.max_label_null_fraction
    extended = load_settings("dev", overrides=("validation.extra_carriers=[ZZ]",), root=ROOT)
    assert validation.suite_parameters(extended)["extra_carriers"] == ["ZZ"]


@pytest.mark.parametrize("table", ["flights", "weather", "model_input"])
def test_the_project_suites_resolve_every_parameter(table):
    parameters = validation.suite_parameters(load_settings("prod", root=ROOT))
    spec = validation.read_suite(validation.suite_path(ROOT, table), parameters)
    assert spec.table == table
    assert len(spec.expectations) >= 20
    text = repr([item["kwargs"] for item in spec.expectations])
    assert "$" not in text


def test_great_expectations_is_imported_only_when_validating():
    """The CLI starts fast: importing the package and its pipeline does not load GX."""
    import subprocess
    import sys

    script = (
        "import sys; from ml_project import cli, pipeline, validation; "
        "print('great_expectations' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "False"
