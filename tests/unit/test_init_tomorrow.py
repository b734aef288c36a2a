"""`ml-project init` written for next month's data (issue 26), on small generated tables:
timestamps, contracts with headroom (HARD where nature says, OBSERVED elsewhere), joins of
further tables, key components as features, row numbers left out, a category limit that grows
with the table. The suites are run by great-expectations on the data they were made from, on
next month's legitimate data, and on physically bad data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_project import contracts, data, profile, scaffold, views
from ml_project.validation import MODEL_INPUT, TableValidator
from tests.unit.test_init import planned_settings

ROOT = Path("/project")
LEAGUE = ("ant", "bee", "cat", "dog", "eel", "fox")


def others(warnings: tuple[str, ...]) -> tuple[str, ...]:
    """init's warnings but the one every small table gets (gate.min_test_rows lowered)."""
    return tuple(warning for warning in warnings if "gate.min_test_rows lowered" not in warning)


def games(rows: int = 600, *, seed: int = 0, start: str = "2021-03-01") -> pd.DataFrame:
    """One row per (season, team, game): a row number, a time (ISO text, UTC), a count, a
    measurement, a category, a constant and free text nobody reads, and a salary-like label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "row": np.arange(rows),
            "season": rng.choice([2019, 2020, 2021], rows),
            "team": rng.choice(LEAGUE, rows),
            "game": rng.permutation(rows) + 1_000,
            "played_at": pd.date_range(start, periods=rows, freq="6h", tz="UTC").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "items_count": rng.integers(0, 30, rows),
            "temperature": rng.normal(12, 5, rows).round(1),
            "venue": rng.choice(["north", "south", "east"], rows),
            "league": "premier",
            "remark": [f"remark {i}" for i in rng.permutation(rows)],
        }
    )
    frame["salary"] = (1_000 + 40 * frame["items_count"] + rng.gamma(2, 300, rows)).round(2)
    return frame


def request(tables=None, *, label="salary", key=("season", "team", "game"), kind="regression"):
    tables = tables or {"games": ROOT / "data" / "games.csv"}
    return scaffold.InitRequest(tables=tables, label=label, key_columns=key, kind=kind)


def write(made: scaffold.Plan, root: Path) -> None:
    for relative, text in made.files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def as_model_reads(frame: pd.DataFrame, settings) -> pd.DataFrame:
    """The model's input columns as the platform hands them over (the time part's contract):
    a native tz-aware time as UTC ISO text with Z, a naive one without, text as it is."""
    rows = frame.loc[:, settings.features.columns].copy()
    for name in settings.features.datetime:
        values = rows[name]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            rows[name] = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif pd.api.types.is_datetime64_dtype(values.dtype):
            rows[name] = values.dt.strftime("%Y-%m-%dT%H:%M:%S")
    return rows.astype({name: "float64" for name in settings.features.numeric})


def failures(made, root, table, frame):
    validator = TableValidator(table, settings=planned_settings(made, "dev"), root=root)
    report = validator(frame, source="test")
    return {(failure.expectation, failure.column) for failure in report.failures}


# --- the profile -------------------------------------------------------------------------


def test_iso_text_and_native_datetimes_are_timestamps_with_their_zone():
    zoned = profile.profile_column(pd.Series(["2024-01-05T10:00:00Z", "2024-03-01T08:30+02:00"],
                                             name="at"))  # fmt: skip
    assert (zoned.kind, zoned.zone, zoned.native_time) == ("datetime", "all", False)
    assert (zoned.first, zoned.last) == ("2024-01-05T10:00:00+00:00", "2024-03-01T06:30:00+00:00")
    dates = profile.profile_column(pd.Series(["2024-01-05", None, "2023-12-31"], name="day"))
    assert (dates.kind, dates.zone, dates.nulls, dates.first) == ("datetime", "none", 1,
                                                                 "2023-12-31T00:00:00")  # fmt: skip
    mixed = profile.profile_column(pd.Series(["2024-01-05T10:00:00Z", "2024-01-05T10:00:00"]))
    assert mixed.zone == "mixed"
    for values in (["2024-02-30", "2024-01-01"], ["2024-13-01"], ["2024", "2025"], ["soon"]):
        assert profile.profile_column(pd.Series(values)).kind == "text", values
    # the sample passes, the whole column does not: text
    late = [f"2024-01-{day:02d}" for day in range(1, 29)] * 10 + ["next week"]
    assert profile.profile_column(pd.Series(late)).kind == "text"
    native = pd.Series(pd.date_range("2024-01-01", periods=3, freq="D", tz="Europe/Paris"))
    aware = profile.profile_column(native)
    assert (aware.kind, aware.zone, aware.native_time) == ("datetime", "all", True)
    naive = profile.profile_column(native.dt.tz_localize(None))
    assert (naive.zone, naive.native_time) == ("none", True)


def test_years_and_calendar_fields_are_told_apart_from_other_whole_numbers():
    def column(values, name):
        return profile.profile_column(pd.Series(values, name=name))

    assert column([2000, 2015], "season").year_like  # values within 1900-2100
    assert column([1850, 1890], "birth_year").year_like  # named so, four digits
    assert column([2000.0, 2015.5], "date").year_like  # a decimal year named as a time
    assert not column([2000.0, 2015.5], "price").year_like
    assert not column([0, 40], "years_employed").year_like  # a count of years
    assert column([1, 12], "month").calendar_field == (1, 12)
    assert column([0, 23], "pickupHour").calendar_field == (0, 23)
    assert column([1, 40], "day").calendar_field is None  # not the calendar's days
    suite = "".join(contracts.column_expectations(column([1, 3, 12], "month"), role="read"))
    assert (
        "{column: month, min_value: 1, max_value: 12}" in suite and "HARD (the calendar)" in suite
    )
    decimal = contracts.numeric_bounds(column([2000.0, 2015.5], "date"))
    assert decimal[1] is None


def test_the_category_limit_grows_with_the_rows():
    assert profile.category_limit(40) == 50 and profile.category_limit(3_000) == 150
    assert profile.category_limit(10**7) == profile.MAX_CATEGORY_LIMIT
    rng = np.random.default_rng(1)
    for rows, kept in ((3_000, True), (1_000, False)):
        frame = pd.DataFrame({"id": np.arange(rows) * 3 + 7, "y": rng.normal(size=rows),
                              "x": rng.normal(size=rows),
                              "town": [f"town{i % 87}" for i in range(rows)]})  # fmt: skip
        chosen = scaffold.choose_features(profile.profile_table(frame, "t"), key_columns=("id",),
                                          label="y")  # fmt: skip
        assert ("town" in chosen.categorical) is kept, chosen.dropped
        if not kept:
            assert (
                "87 distinct values; a category has at most 50 in 1000 rows"
                in (chosen.dropped["town"])
            )


def test_row_numbers_are_left_out_and_other_whole_numbers_kept():
    rows = 60
    frame = pd.DataFrame(
        {
            "id": np.arange(rows) * 5 + 3,
            "Unnamed: 0": np.arange(rows)[::-1] * 2,  # named as an index, not consecutive
            "position": np.arange(rows) + 1,  # 1..60: the row's position
            "sparse": np.arange(rows) * 3,  # unique, not consecutive, not an index's name
            "y": np.arange(rows) % 2,
        }
    )
    chosen = scaffold.choose_features(profile.profile_table(frame, "t"), key_columns=("id",),
                                      label="y")  # fmt: skip
    assert set(chosen.dropped) == {"Unnamed: 0", "position"}
    assert "a row number" in chosen.dropped["position"]
    assert chosen.numeric == ("sparse",)


def test_key_components_with_few_values_are_read_a_single_key_never():
    frame = games()
    made = scaffold.plan_problem(request(), {"games": frame}, root=ROOT)
    features = made.features
    assert set(features.offered) == {"season", "team"}  # game is unique alone: an id
    assert "team" in features.categorical and "season" in features.numeric
    assert "row" in features.dropped and "a row number" in features.dropped["row"]
    base = made.files["problems/games/environments/base.yaml"]
    assert "  #   season: 3 values, not unique alone: it may carry information" in base
    single = scaffold.plan_problem(
        request(key=("game",)), {"games": frame.drop(columns=["row"])}, root=ROOT
    )
    assert single.features.offered == {} and "game" not in single.features.columns


def test_a_key_that_is_a_time_is_read_as_time():
    """One row per day, keyed by the date: its month and weekday may carry the signal."""
    frame = games().drop(columns=["row", "season", "team", "game"])
    made = scaffold.plan_problem(request(key=("played_at",)), {"games": frame}, root=ROOT)
    assert made.features.datetime == ("played_at",) and "played_at" in made.features.offered
    settings = yaml.safe_load(made.files["problems/games/environments/base.yaml"])
    assert settings["features"]["datetime"] == ["played_at"]
    assert settings["split"]["time_column"] == "played_at"


# --- time --------------------------------------------------------------------------------


def test_a_time_column_is_read_holds_out_the_newest_rows_and_gets_no_bound(tmp_path):
    made = scaffold.plan_problem(request(), {"games": games()}, root=ROOT)
    assert made.features.datetime == ("played_at",) and made.time_column == "played_at"
    settings = planned_settings(made, "dev")
    assert settings.split.time_column == "played_at"
    assert settings.features.datetime == ("played_at",)
    assert settings.monitor.ignore == ("season",)  # a year: each new season moves it
    for suite in ("games", MODEL_INPUT):
        items = yaml.safe_load(made.files[f"problems/games/expectations/{suite}.yaml"])
        rules = {(i["type"], i["kwargs"].get("column")): i["kwargs"] for i in items["expectations"]}
        assert rules[("expect_column_values_to_match_regex", "played_at")]["regex"] in (
            profile.ISO_8601, profile.ZONED)  # fmt: skip
        assert ("expect_column_values_to_be_between", "played_at") not in rules
        season = rules.get(("expect_column_values_to_be_between", "season"))
        if suite == MODEL_INPUT:
            assert season == {"column": "season", "min_value": 2018}  # no upper bound
    steps = views.next_steps(made, request())
    assert "Held out: the newest rows by played_at (split.time_column)" in steps
    assert "Not drift: season (monitor.ignore)" in steps


def test_a_time_column_with_gaps_is_read_but_not_the_split():
    frame = games()
    frame.loc[::7, "played_at"] = None
    made = scaffold.plan_problem(request(), {"games": frame}, root=ROOT)
    assert made.time_column is None and "played_at" in made.features.datetime
    base = made.files["problems/games/environments/base.yaml"]
    assert "# split.time_column not set: played_at has 86 empty values" in base


def test_values_starting_with_a_dollar_are_written_as_values(tmp_path):
    """An income bracket like "$20000 - 24999" (the GSS survey) is a category, not `$name`."""
    frame = games().assign(bracket=lambda f: np.where(f["row"] % 2, "$1000 to 2999", "$lo"))
    made = scaffold.plan_problem(request(), {"games": frame}, root=ROOT)
    write(made, tmp_path)
    settings = planned_settings(made, "dev")
    assert failures(made, tmp_path, "games", frame) == set()
    assert failures(made, tmp_path, MODEL_INPUT, as_model_reads(frame, settings)) == set()


def test_without_a_timestamp_a_season_or_year_orders_the_split():
    """The season a game was played in is time too: the newest seasons are held out."""
    frame = games().drop(columns=["played_at"])
    made = scaffold.plan_problem(request(), {"games": frame}, root=ROOT)
    assert made.time_column == "season"
    unnamed = frame.rename(columns={"season": "s"})
    made = scaffold.plan_problem(request(key=("s", "team", "game")), {"games": unnamed}, root=ROOT)
    assert made.time_column is None  # whole numbers in 1900-2100 alone do not say "time"


def test_the_suites_pass_today_and_next_month_and_refuse_bad_data(tmp_path):
    today = games()
    made = scaffold.plan_problem(request(), {"games": today}, root=ROOT)
    write(made, tmp_path)
    settings = planned_settings(made, "dev")
    assert failures(made, tmp_path, "games", today) == set()
    assert failures(made, tmp_path, MODEL_INPUT, as_model_reads(today, settings)) == set()
    # next month: a new season, a new value where nobody reads, a record salary, a warm day
    later = games(seed=5, start="2022-06-01").assign(season=2022, league="regional")
    later.loc[0, "salary"] = today["salary"].max() * 3
    later.loc[1, "remark"] = "never seen"
    later.loc[2, "temperature"] = today["temperature"].max() + 3
    assert failures(made, tmp_path, "games", later) == set()
    assert failures(made, tmp_path, MODEL_INPUT, as_model_reads(later, settings)) == set()
    bad = {
        "a negative count": (later.assign(items_count=later["items_count"] - 100),
                             ("expect_column_values_to_be_between", "items_count")),
        "an unparseable date": (later.assign(played_at="2022-06-31T10:00:00Z"),
                                ("expect_column_values_to_match_regex", "played_at")),
        "no date at all": (later.assign(played_at="next Tuesday"),
                           ("expect_column_values_to_match_regex", "played_at")),
        "a time without its zone": (later.assign(played_at="2022-06-01T10:00:00"),
                                    ("expect_column_values_to_match_regex", "played_at")),
        "a null key": (later.assign(team=later["team"].where(later.index > 0)),
                       ("expect_column_values_to_not_be_null", "team")),
        "a duplicate key": (pd.concat([later, later.head(1)]),
                            ("expect_compound_columns_to_be_unique", None)),
        "a negative salary": (later.assign(salary=-later["salary"]),
                              ("expect_column_values_to_be_between", "salary")),
    }  # fmt: skip
    for case, (frame, rule) in bad.items():
        assert rule in failures(made, tmp_path, "games", frame), case


def test_a_parquet_time_gets_its_native_type_and_the_model_input_reads_iso(tmp_path):
    frame = games().assign(
        played_at=lambda f: pd.to_datetime(f["played_at"], utc=True).dt.tz_convert("Asia/Tokyo")
    )
    path = tmp_path / "games.parquet"
    frame.to_parquet(path)
    read = data.read_table(path)  # as init and validate-data read it
    made = scaffold.plan_problem(request({"games": path}), {"games": read}, root=ROOT)
    suite = made.files["problems/games/expectations/games.yaml"]
    assert "{column: played_at, type_: Timestamp}" in suite  # not a numeric type rule
    assert "expect_column_values_to_match_regex, kwargs: {column: played_at" not in suite
    write(made, tmp_path)
    settings = planned_settings(made, "dev")
    assert failures(made, tmp_path, "games", read) == set()
    assert failures(made, tmp_path, MODEL_INPUT, as_model_reads(read, settings)) == set()
    naive = read.assign(played_at=read["played_at"].dt.tz_localize(None))
    assert ("expect_column_values_to_be_of_type", "played_at") in failures(
        made, tmp_path, "games", naive
    )
    # a naive native time: its own type name, and the model input without a zone
    made = scaffold.plan_problem(request({"games": path}), {"games": naive}, root=ROOT)
    assert (
        "{column: played_at, type_: datetime64}"
        in (made.files["problems/games/expectations/games.yaml"])
    )
    write(made, tmp_path)
    assert failures(made, tmp_path, "games", naive) == set()
    settings = planned_settings(made, "dev")
    assert failures(made, tmp_path, MODEL_INPUT, as_model_reads(naive, settings)) == set()


# --- several tables ----------------------------------------------------------------------


def shop(rows: int = 300, seed: int = 2) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    orders = pd.DataFrame(
        {
            "order_id": rng.permutation(rows) * 7 + 11,
            "store": rng.choice([1, 2, 3, 4], rows),
            "basket": rng.integers(1, 9, rows),
            "spent": rng.gamma(2, 20, rows).round(2),
        }
    )
    stores = pd.DataFrame(
        {
            "store": [4, 2, 3, 1],
            "city": ["oslo", "lima", "rome", "lima"],
            "floor_area": [120.0, 300.0, 80.0, 95.5],
        }  # fmt: skip
    )
    return {"orders": orders, "stores": stores}


def shop_request(**tables) -> scaffold.InitRequest:
    paths = {name: ROOT / "data" / f"{name}.csv" for name in tables or ("orders", "stores")}
    return scaffold.InitRequest(tables=paths, label="spent", key_columns=("order_id",),
                                kind="regression")  # fmt: skip


def test_a_further_table_with_a_unique_shared_column_is_joined_in_records(tmp_path):
    frames = shop()
    made = scaffold.plan_problem(shop_request(), frames, root=ROOT)
    assert made.joins == (scaffold.Join("stores", ("store",), 4),)
    code = made.files["problems/orders/problem.py"]
    assert "NotImplementedError" not in code and "joined on store: one row each in stores" in code
    namespace: dict = {}
    exec(compile(code, "problem.py", "exec"), namespace)
    records = namespace["records"](frames, None)
    pd.testing.assert_frame_equal(records, scaffold.join_tables(frames, "orders", made.joins))
    assert len(records) == 300 and records["city"].notna().all()
    assert made.features.categorical == ("city",)
    assert made.features.numeric == ("store", "basket", "floor_area")
    items = yaml.safe_load(made.files["problems/orders/expectations/model_input.yaml"])
    covered = {item["kwargs"].get("column") for item in items["expectations"]}
    assert {"city", "floor_area"} <= covered
    stores = yaml.safe_load(made.files["problems/orders/expectations/stores.yaml"])
    assert {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "store"}} in (
        stores["expectations"]
    )
    base = made.files["problems/orders/environments/base.yaml"]
    assert "# features: from the records (orders joined with stores on store)" in base
    write(made, tmp_path)
    settings = planned_settings(made, "dev")
    assert failures(made, tmp_path, "stores", frames["stores"]) == set()
    assert failures(made, tmp_path, MODEL_INPUT, as_model_reads(records, settings)) == set()
    repeated = pd.concat([frames["stores"], frames["stores"].head(1)])
    assert ("expect_column_values_to_be_unique", "store") in failures(
        made, tmp_path, "stores", repeated
    )
    assert "Write records()" not in views.next_steps(made, shop_request())


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda s: pd.concat([s, s.head(1)]), "stores shares store, which do not name one row "
                                              "of it (2 rows repeat them, 0 leave them empty)"),
        (lambda s: s.rename(columns={"store": "shop"}), "stores shares no column with orders"),
        (lambda s: s.assign(store=s["store"].astype(str)), "holds store as text, the records "
                                                           "as number"),
    ],
)  # fmt: skip
def test_no_guessable_join_keeps_the_records_to_write_and_warns(change, says):
    frames = shop()
    frames["stores"] = change(frames["stores"])
    made = scaffold.plan_problem(shop_request(), frames, root=ROOT)
    assert made.joins == ()
    assert "raise NotImplementedError" in made.files["problems/orders/problem.py"]
    (warning,) = others(made.warnings)
    assert warning.startswith("no join guessed for records() (table ") and says in warning
    assert "write records() in problems/orders/problem.py" in warning
    assert "city" not in made.features.columns


def test_a_join_takes_the_fewest_shared_columns_that_name_a_row():
    """orders and stores both hold a city (the order's delivery city, the store's own): the
    join is on store alone, the records keep the order's city, and no city_x/city_y appear."""
    frames = shop()
    frames["orders"] = frames["orders"].assign(
        city=np.where(frames["orders"]["order_id"] % 3 == 0, "oslo", "bergen")
    )
    made = scaffold.plan_problem(shop_request(), frames, root=ROOT)
    assert made.joins == (scaffold.Join("stores", ("store",), 4),)
    namespace: dict = {}
    exec(compile(made.files["problems/orders/problem.py"], "problem.py", "exec"), namespace)
    records = namespace["records"](frames, None)
    pd.testing.assert_frame_equal(records, scaffold.join_tables(frames, "orders", made.joins))
    assert "city_x" not in records and records["city"].tolist() == frames["orders"]["city"].tolist()
    assert records["floor_area"].notna().all()


def test_a_join_most_records_miss_is_warned_about():
    frames = shop()
    frames["stores"] = frames["stores"].assign(store=[1, 6, 7, 8])  # 3 of 4 stores unknown
    made = scaffold.plan_problem(shop_request(), frames, root=ROOT)
    assert made.joins == (scaffold.Join("stores", ("store",), 4),)
    (warning,) = others(made.warnings)
    assert warning.startswith("records() joins stores on store, but only 2")
    assert "of the rows of orders find a row there" in warning
    assert others(scaffold.plan_problem(shop_request(), shop(), root=ROOT).warnings) == ()


@pytest.mark.parametrize(
    ("name", "values", "bounds"),
    [("month", [1, 12, 3], (1, 12)), ("dep_hour", [0, 23], (0, 23)),
     ("minutes_late", [0, 59, 3], None), ("days_to_ship", [1, 31], None),
     ("hours", [0, 23], None)],
)  # fmt: skip
def test_only_a_calendar_field_gets_the_calendars_bounds(name, values, bounds):
    """A month or an hour of the day is bounded by the calendar; a duration counted in minutes
    or days is not (a 75-minute delay is next month's legitimate data)."""
    assert profile.profile_column(pd.Series(values, name=name)).calendar_field == bounds


def test_a_whole_number_from_one_is_no_count_unless_named_so():
    """A temperature seen between 1 and 29 may be -2 next winter: no floor of 0; a basket of 1
    to 14 items is a count by its name."""
    cold = profile.profile_column(pd.Series([1, 29, 12], name="temp_min"))
    basket = profile.profile_column(pd.Series([1, 14, 3], name="basket"))
    assert contracts.numeric_bounds(cold)[0] < 0
    assert contracts.numeric_bounds(basket)[0] == 0


def test_infinite_values_get_no_range_and_no_crash(tmp_path):
    """A column holding inf (a division by zero upstream) is profiled and written without a
    range: none can hold it, and init refusing its own file would help nobody."""
    frame = games().assign(ratio=lambda f: np.where(f["row"] == 3, np.inf, f["row"] / 7))
    frame.loc[5, "salary"] = np.inf
    made = scaffold.plan_problem(request(), {"games": frame}, root=ROOT)
    suite = made.files["problems/games/expectations/games.yaml"]
    assert "# observed: 1 infinite values in 600 rows: no range" in suite
    write(made, tmp_path)
    assert failures(made, tmp_path, "games", frame) == set()


def test_the_split_orders_by_when_a_record_happened_not_by_a_birth_date():
    """A customer's date of birth comes first in the file; the games' kickoff says when a row
    happened: the newest kickoffs are held out, not the youngest customers."""
    frame = games()
    births = pd.date_range("1960-01-01", periods=len(frame), freq="17D", tz="UTC")
    frame.insert(1, "date_of_birth", births.strftime("%Y-%m-%dT%H:%M:%SZ"))
    made = scaffold.plan_problem(request(), {"games": frame}, root=ROOT)
    assert made.time_column == "played_at"
    model_year = games().drop(columns=["played_at", "season"]).assign(model_year=2015)
    model_year.loc[::2, "model_year"] = 2016
    made = scaffold.plan_problem(request(key=("team", "game")), {"games": model_year}, root=ROOT)
    assert made.time_column is None
