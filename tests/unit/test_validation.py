"""Reading suite files and filling their `$name` parameters (pure: no great-expectations)."""

from pathlib import Path

import pytest

from ml_project import validation
from ml_project.errors import ConfigError
from ml_project.settings import load_settings
from tests.synthetic import write_problem

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


def test_a_compound_unique_check_of_one_column_becomes_that_columns_unique_check(tmp_path):
    text = "table: t\nexpectations:\n  - type: expect_compound_columns_to_be_unique\n"
    one = write(tmp_path, text + "    kwargs: {column_list: $keys, mostly: 0.9}\n")
    (item,) = validation.read_suite(one, {"keys": ["id"]}).expectations
    assert item["type"] == "expect_column_values_to_be_unique"
    assert item["kwargs"] == {"column": "id", "mostly": 0.9}
    (item,) = validation.read_suite(one, {"keys": ["a", "b"]}).expectations
    assert item["type"] == "expect_compound_columns_to_be_unique"
    assert item["kwargs"] == {"column_list": ["a", "b"], "mostly": 0.9}


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


@pytest.fixture
def project(tmp_path) -> Path:
    import shutil

    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    write_problem(tmp_path, "binary", rows=200)
    return tmp_path


def test_parameters_come_from_the_settings_and_the_data_section(project):
    settings = load_settings(
        "dev", problem="synthetic_binary", root=project,
        overrides=("validation.parameters.min_rows=7",),
    )  # fmt: skip
    parameters = validation.suite_parameters(settings)
    assert parameters["min_rows"] == 7
    assert parameters["model_columns"] == ["colour", "x1", "x2", "x3", "x4"]
    assert parameters["key_columns"] == ["id"] and parameters["label"] == "target"


def test_suites_are_read_from_the_problems_folder_and_hashed_for_the_run(project):
    settings = load_settings("dev", problem="synthetic_binary", root=project)
    path = validation.suite_path(project, "synthetic_binary", settings)
    assert (
        path == project / "problems" / "synthetic_binary" / "expectations" / "synthetic_binary.yaml"
    )
    assert validation.suite_tables(settings) == ("synthetic_binary", "model_input")
    before = validation.run_tags([], settings, project)["validation.suites_digest"]
    path.write_text(path.read_text() + "\n# reviewed\n")
    assert validation.run_tags([], settings, project)["validation.suites_digest"] != before


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


def test_text_that_is_no_parameter_name_is_a_value(tmp_path):
    """Income brackets such as "$25000 or more" are values; `$$` writes a value that would
    otherwise read as a parameter."""
    path = write(
        tmp_path,
        """
table: t
expectations:
  - type: expect_column_values_to_be_in_set
    kwargs: {column: c, value_set: [$25000 or more, "$8000 to 9999", $$extra, $extra]}
""",
    )
    (item,) = validation.read_suite(path, PARAMETERS).expectations
    assert item["kwargs"]["value_set"] == ["$25000 or more", "$8000 to 9999", "$extra", "ZZ", "QQ"]


def test_a_rule_that_cannot_run_on_a_mistyped_column_points_at_its_type_rule():
    """Text in a number column fails the type rule; the range rule on it then cannot run, and
    the report says so in its own words, not the library's; another column's error stays."""
    raised = {"raised_exception": True, "exception_message": "min_value must be of the same type"}

    def result(kind, column, success, **extra):
        return {"success": success, "expectation_config": {"type": kind, "kwargs": {
            "column": column}}, **extra}  # fmt: skip

    report = validation.make_report(
        {"results": [
            result("expect_column_values_to_be_in_type_list", "x", False,
                   result={"observed_value": "str"}),
            result("expect_column_values_to_be_between", "x", False, exception_info=raised),
            result("expect_column_values_to_be_between", "y", False, exception_info=raised),
            result("expect_column_values_to_not_be_null", "z", True),
        ]},  # fmt: skip
        table="t", source="t.csv", suite_file="t.yaml", rows=3,
    )  # fmt: skip
    problems = {(each.column, each.expectation): each.problem for each in report.failures}
    assert problems["x", "expect_column_values_to_be_between"] == validation.MISTYPED
    assert "its type rule above" in validation.MISTYPED
    assert problems["y", "expect_column_values_to_be_between"] == (
        "could not be checked: min_value must be of the same type"
    )
    assert len(report.failures) == 3


def test_verdicts_are_asked_once_before_a_fork_and_answered_without_the_store(project):
    """asked_now: the store's lookup is called here, once a frame; what a forked check gets
    answers from memory; a frame is keyed once however often it is asked."""
    import pandas as pd

    settings = load_settings("dev", problem="synthetic_binary", root=project)
    table = "synthetic_binary"
    frame = pd.read_csv(project / "data" / f"{table}.csv")
    validators = validation.validators_of([table], settings=settings, root=project)
    key = validators[table].key(frame)
    assert key is not None and validators[table].key(frame) is key  # kept, not hashed again
    asked: list[tuple[str, str]] = []

    def store(table: str, key: str) -> tuple[str, int] | None:
        asked.append((table, key))
        return ("run-1", 12) if key == expected else None

    expected = key
    answered, found = validation.asked_now({table: frame}, validators, store)
    assert found and asked == [(table, key)]
    report = validators[table](frame, source="t.csv", reuse=answered)
    assert report.reused_from == "run-1" and report.evaluated == 12 and asked == [(table, key)]
    expected = "another"  # not found: the suite must run, its passed verdict still keyed
    answered, found = validation.asked_now({table: frame}, validators, store)
    assert not found and answered(table, key) is None
    assert validation.nothing_reused(table, key) is None
