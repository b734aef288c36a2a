"""The expectation suites the pipeline runs: on the real data, on records, and on bad suites."""

import json
import shutil
from pathlib import Path

import pytest

from ml_project import data, features, pipeline, validation
from ml_project.errors import ConfigError
from ml_project.settings import ENVS, load_settings

ROOT = Path(__file__).resolve().parents[2]
TABLES = ["flights", "weather", "model_input"]


@pytest.fixture(scope="module")
def raw_tables():
    flights_path, weather_path = data.demo_data_paths()
    return data.read_table(flights_path), data.read_table(weather_path)


@pytest.fixture(scope="module")
def records(raw_tables):
    """A few hundred rows as a client would send them: the model's raw columns, in order."""
    settings = load_settings("dev", root=ROOT)
    prepared = pipeline.prepare_data(settings, *raw_tables)
    return prepared.split.test[prepared.columns].head(300).reset_index(drop=True)


def validate_all(settings, flights, weather):
    sources = pipeline.data_sources(settings, ROOT)
    reports = pipeline.validate_raw(settings, flights, weather, sources, ROOT)
    prepared = pipeline.prepare_data(settings, flights, weather)
    reports.append(pipeline.validate_prepared(settings, prepared, sources, ROOT))
    return reports, prepared


@pytest.mark.parametrize("env", ENVS)
def test_the_suites_pass_on_the_real_data(env, raw_tables):
    settings = load_settings(env, root=ROOT)
    reports, prepared = validate_all(settings, *raw_tables)
    assert [report.table for report in reports] == TABLES
    parameters = validation.suite_parameters(settings)
    for report in reports:
        assert report.success, report.describe()
        suite = validation.read_suite(validation.suite_path(ROOT, report.table), parameters)
        assert report.evaluated == len(suite.expectations)
    assert reports[0].rows == len(raw_tables[0]) and reports[1].rows == len(raw_tables[1])
    assert reports[2].rows == prepared.rows["used"]


def failures_of(report, column):
    return [failure for failure in report.failures if failure.column == column]


def test_mostly_is_what_lets_the_known_wind_outlier_pass(raw_tables):
    strict = load_settings("dev", overrides=("validation.mostly=1.0",), root=ROOT)
    flights, weather = raw_tables
    report = validation.validate_frames({"weather": weather}, settings=strict, root=ROOT)[0]
    assert not report.success
    (failure,) = report.failures
    assert failure.column == "wind_speed" and failure.unexpected_count == 1
    assert failure.examples[0] == pytest.approx(1048.36058)


def test_the_label_null_rate_binds(raw_tables):
    strict = load_settings("dev", overrides=("validation.max_label_null_fraction=0.02",), root=ROOT)
    report = validation.validate_frames({"flights": raw_tables[0]}, settings=strict, root=ROOT)[0]
    (failure,) = report.failures
    assert failure.column == "arr_delay" and failure.unexpected_count == 9430
    assert "mostly=0.98" in failure.rule


def test_a_report_names_table_column_rule_count_and_examples(raw_tables):
    settings = load_settings("dev", root=ROOT)
    flights = raw_tables[0].head(5000).copy()
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
    settings = load_settings("dev", root=ROOT)
    assert list(records.columns) == features.raw_columns(settings.features)
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
    settings = load_settings("dev", root=ROOT)
    report = validation.validate_model_input(spoil(records.copy()), settings, ROOT)
    assert not report.success
    matching = [f for f in report.failures if f.column == column and problem in f.problem]
    assert matching, report.describe()


def test_an_overlay_may_add_carriers(records):
    spoilt = records.assign(carrier=records["carrier"].where(records.index > 0, "ZZ"))
    extended = load_settings("dev", overrides=("validation.extra_carriers=[ZZ]",), root=ROOT)
    assert validation.validate_model_input(spoilt, extended, ROOT).success


def misspell(tmp_path, old, new):
    """A copy of the project's suites where the first `old` in flights.yaml reads `new`."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "expectations", root / "expectations")
    path = root / "expectations" / "flights.yaml"
    path.write_text(path.read_text().replace(old, new, 1))
    return root, path


def test_a_misspelt_expectation_type_is_rejected(tmp_path, raw_tables):
    root, path = misspell(
        tmp_path,
        "type: expect_column_values_to_be_between",
        "type: expect_column_values_to_be_betwen",
    )
    settings = load_settings("dev", root=ROOT)
    with pytest.raises(ConfigError) as caught:
        validation.validate_frames({"flights": raw_tables[0]}, settings=settings, root=root)
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
    settings = load_settings("dev", root=ROOT)
    with pytest.raises(ConfigError, match="invalid arguments.*colum"):
        validation.validate_frames({"flights": raw_tables[0]}, settings=settings, root=root)


def test_great_expectations_alone_would_drop_a_misspelt_type():
    """Why the loader builds each expectation itself: GX 1.24 keeps a suite without it."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(
        name="t",
        expectations=[{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "a"}}],
    )
    assert len(suite.expectations) == 0
