"""A problem's suites against good and deliberately broken data (the synthetic problem's)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from ml_project import pipeline, validation
from ml_project.errors import ConfigError
from ml_project.problem import load_problem
from ml_project.settings import load_settings
from tests.synthetic import make_table, write_problem

ROOT = Path(__file__).resolve().parents[2]
TABLE = "synthetic_binary"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suites")
    shutil.copytree(ROOT / "environments", root / "environments")
    write_problem(root, "binary", rows=500)
    return root


@pytest.fixture(scope="module")
def settings(project):
    return load_settings("dev", problem=TABLE, root=project)


def check(settings, project, frame):
    return validation.validate_frames({TABLE: frame}, settings=settings, root=project)[0]


def test_good_data_passes_every_suite(settings, project):
    table = make_table("binary", 500)
    report = check(settings, project, table)
    assert report.success, report.describe()
    problem = load_problem(settings, project)
    prepared = pipeline.prepare_data(settings, problem, {TABLE: table})
    model_input = pipeline.validate_prepared(settings, prepared, project)
    assert model_input.success and model_input.rows == prepared.rows["used"]


@pytest.mark.parametrize(
    ("breakage", "column", "rule"),
    [
        (lambda f: f.assign(colour=np.where(f.index == 3, "purple", f["colour"])), "colour",
         "expect_column_values_to_be_in_set"),
        (lambda f: f.assign(x1=np.where(f.index < 2, 50.0, f["x1"])), "x1",
         "expect_column_values_to_be_between"),
        (lambda f: f.assign(id=np.where(f.index == 1, f["id"].iloc[0], f["id"])), "id",
         "expect_column_values_to_be_unique"),
        (lambda f: f.assign(colour=f["colour"].where(f.index != 7)), "colour",
         "expect_column_values_to_not_be_null"),
        (lambda f: f.assign(x2=f["x2"].astype(str).where(f.index != 0, "n/a")), "x2",
         "expect_column_values_to_be_in_type_list"),
        (lambda f: f.head(50), None, "expect_table_row_count_to_be_between"),
    ],
)  # fmt: skip
def test_broken_data_fails_naming_the_column_and_the_rule(
    settings, project, breakage, column, rule
):
    report = check(settings, project, breakage(make_table("binary", 500)))
    assert not report.success
    assert [(f.column, f.expectation) for f in report.failures] == [(column, rule)]
    message = validation.failure_message([report])
    assert TABLE in message and rule in message and (column or "") in message


def test_a_missing_column_is_reported_as_missing(settings, project):
    report = check(settings, project, make_table("binary", 500).drop(columns=["colour"]))
    assert not report.success
    assert {f.problem for f in report.failures if f.column == "colour"} == {
        validation.MISSING_COLUMN
    }
    assert "no column colour" in report.describe()


def spoil_suite(project, old: str, new: str) -> Path:
    path = project / "problems" / TABLE / "expectations" / f"{TABLE}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.fixture
def own_project(tmp_path) -> Path:
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    write_problem(tmp_path, "binary", rows=200)
    return tmp_path


def test_a_misspelt_expectation_type_is_refused_naming_file_and_item(own_project):
    path = spoil_suite(
        own_project,
        "type: expect_column_values_to_be_between",
        "type: expect_column_values_to_be_betwen",
    )
    settings = load_settings("dev", problem=TABLE, root=own_project)
    with pytest.raises(ConfigError) as caught:
        check(settings, own_project, make_table("binary", 200))
    message = str(caught.value)
    assert str(path) in message and "expect_column_values_to_be_betwen" in message
    assert "no expectation of that type (misspelt?)" in message
    assert "expectation 11 " in message  # its position in the file


def test_a_misspelt_argument_is_refused(own_project):
    spoil_suite(own_project, "{column: x1, min_value", "{colum: x1, min_value")
    settings = load_settings("dev", problem=TABLE, root=own_project)
    with pytest.raises(ConfigError, match="invalid arguments.*colum"):
        check(settings, own_project, make_table("binary", 200))


def test_a_compound_key_check_over_a_one_column_key_checks_that_column(own_project):
    """`$key_columns` of a one-column key: GX refuses a compound of one, the platform does not."""
    spoil_suite(
        own_project,
        "type: expect_column_values_to_be_unique\n    kwargs: {column: id}",
        "type: expect_compound_columns_to_be_unique\n    kwargs: {column_list: $key_columns}",
    )
    settings = load_settings("dev", problem=TABLE, root=own_project)
    frame = make_table("binary", 200)
    assert check(settings, own_project, frame).success
    frame.loc[1, "id"] = frame.loc[0, "id"]
    report = check(settings, own_project, frame)
    assert not report.success
    assert "expect_column_values_to_be_unique" in report.describe() and "id" in report.describe()


def test_great_expectations_alone_would_drop_a_misspelt_type():
    """Why the loader builds each expectation itself: GX 1.24 keeps a suite without it."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(
        name="t",
        expectations=[{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "a"}}],
    )
    assert len(suite.expectations) == 0


def test_a_report_names_table_column_rule_count_and_examples(settings, project):
    frame = make_table("binary", 500)
    frame.loc[[3, 9, 12], "colour"] = "purple"
    report = check(settings, project, frame)
    text = report.describe()
    assert text.startswith(f"{TABLE} (in-memory frame): 1 of ")
    assert "column colour: expect_column_values_to_be_in_set" in text
    assert "3 of 500 rows (0.60%) failed, e.g. 'purple'" in text


def test_a_passed_verdict_is_reused_only_for_the_same_rows_and_suite(settings, project):
    table = make_table("binary", 500)
    validator = validation.TableValidator(TABLE, settings=settings, root=project)
    asked = []

    def nothing_found(name, key):
        asked.append((name, key))
        return None

    checked = validator(table, source="test", reuse=nothing_found)
    assert checked.success and checked.key == asked[0][1] and checked.reused_from is None
    tags = validation.run_tags([checked], settings, project)
    assert tags[f"validation.{TABLE}.key"] == checked.key
    assert tags[f"validation.{TABLE}.evaluated"] == str(checked.evaluated)

    fresh = validation.TableValidator(TABLE, settings=settings, root=project)
    reused = fresh(table, source="test", reuse=lambda name, key: ("run1", checked.evaluated))
    assert reused.success and reused.reused_from == "run1" and reused.key == checked.key
    assert fresh._built is None  # no suite built, great-expectations not run
    assert validation.run_tags([reused], settings, project)[f"validation.{TABLE}.reused_from"] == (
        "run1"
    )
    assert "the verdict of run run1" in validation.verdict_line(reused)

    key = validation.verdict_key(validator.spec, table)
    assert key == checked.key  # the same rows and suite: the same key
    changed = table.assign(x1=table["x1"].where(table.index != 3, table["x1"] + 1e-9))
    assert validation.verdict_key(validator.spec, changed) != key
    other = load_settings(
        "dev", problem=TABLE, root=project, overrides=("validation.parameters.min_rows=2",)
    )
    spec = validation.TableValidator(TABLE, settings=other, root=project).spec
    assert spec.expectations != validator.spec.expectations
    assert validation.verdict_key(spec, table) != key


def test_a_failed_verdict_is_never_offered_for_reuse(settings, project):
    broken = make_table("binary", 500).head(50)
    report = check(settings, project, broken)
    validator = validation.TableValidator(TABLE, settings=settings, root=project)
    failed = validator(broken, source="test", reuse=lambda name, key: None)
    assert not report.success and not failed.success and failed.key is None
    assert f"validation.{TABLE}.key" not in validation.run_tags([failed], settings, project)


def test_the_key_tells_apart_what_the_row_digest_does_not(settings, project):
    import pandas as pd

    spec = validation.TableValidator(TABLE, settings=settings, root=project).spec
    key = validation.verdict_key
    assert key(spec, pd.DataFrame({"a": [1, "x"]})) != key(spec, pd.DataFrame({"a": ["1", "x"]}))
    small = pd.DataFrame({"a": pd.Categorical(["x"], categories=["x"])})
    wider = pd.DataFrame({"a": pd.Categorical(["x"], categories=["x", "y"])})
    assert key(spec, small) != key(spec, wider)
    # values pandas cannot hash: the suite runs, and no key is recorded
    table = make_table("binary", 500)
    listed = table.assign(extra=[[i] for i in range(len(table))])
    report = validation.TableValidator(TABLE, settings=settings, root=project)(
        listed, source="test", reuse=lambda name, key: ("never", 1)
    )
    assert report.key is None and report.reused_from is None and report.evaluated > 1
