"""`ml-project init`'s pure steps on tiny frames: the profile, the choices, the files."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_project import contracts, profile, scaffold, views
from ml_project.errors import ConfigError, DataError
from ml_project.settings import deep_merge, validate_settings
from ml_project.validation import read_suite

ROOT = Path("/project")


def others(warnings: tuple[str, ...]) -> tuple[str, ...]:
    """init's warnings but the one every small table gets (gate.min_test_rows lowered)."""
    return tuple(warning for warning in warnings if "gate.min_test_rows lowered" not in warning)


def table(rows: int = 40) -> pd.DataFrame:
    """An integer id, a number with a gap, a category, free text, and two labels."""
    ids = np.arange(rows) * 3 + 11
    return pd.DataFrame(
        {
            "id": ids,
            "size": np.where(ids == 14, np.nan, np.linspace(2.0, 8.0, rows)),
            "count": np.arange(rows) % 7,
            "colour": (["red", "blue", "red", "green"] * rows)[:rows],
            "comment": [f"note {i}" for i in range(rows)],
            "constant": ["same"] * rows,
            "target": (["yes", "no"] * rows)[:rows],
            "amount": np.linspace(10.0, 30.0, rows),
        }
    )


def request(kind="binary", label="target", key=("id",), **tables) -> scaffold.InitRequest:
    paths = tables or {"shop": Path("/project/data/shop.csv")}
    return scaffold.InitRequest(tables=paths, label=label, key_columns=key, kind=kind)


def plan(frame=None, **kwargs) -> scaffold.Plan:
    return scaffold.plan_problem(request(**kwargs), {"shop": table() if frame is None else frame},
                                 root=ROOT)  # fmt: skip


def planned_settings(made: scaffold.Plan, env: str):
    """The settings the plan's files give in `env`, over the project's own."""
    merged = {}
    for text in (
        Path("environments/base.yaml").read_text(),
        Path(f"environments/{env}.yaml").read_text(),
        made.files[f"problems/{made.name}/environments/base.yaml"],
        made.files[f"problems/{made.name}/environments/{env}.yaml"],
    ):
        merged = deep_merge(merged, yaml.safe_load(text) or {})
    return validate_settings({**merged, "env": env, "problem": made.name})


def test_the_profile_says_kind_gaps_range_and_categories():
    profiled = profile.profile_table(table(), "shop")
    assert profiled.rows == 40 and profiled.names[0] == "id"
    size = profiled.column("size")
    assert (size.kind, size.nulls, size.minimum, size.maximum) == ("numeric", 1, 2.0, 8.0)
    assert size.null_share == pytest.approx(1 / 40) and not size.integer
    colour = profiled.column("colour")
    assert colour.kind == "text" and colour.categories == (("red", 20), ("blue", 10),
                                                           ("green", 10))  # fmt: skip
    assert profiled.column("id").unique and profiled.column("id").integer
    assert profiled.column("comment").categories == tuple(
        sorted(((f"note {i}", 1) for i in range(40)), key=lambda item: item[0])
    )
    many = profile.profile_column(pd.Series([f"x{i}" for i in range(60)], name="many"))
    assert many.categories is None and many.distinct == 60


def test_features_are_text_with_few_values_and_numbers_never_the_key_or_label():
    chosen = scaffold.choose_features(
        profile.profile_table(table(), "shop"), key_columns=("id",), label="target"
    )
    assert chosen.categorical == ("colour",)
    assert chosen.numeric == ("size", "count", "amount")
    assert set(chosen.dropped) == {"comment", "constant"}
    assert "free text" in chosen.dropped["comment"]


def test_an_id_like_column_is_left_out():
    frame = table().assign(order_id=np.arange(40) + 5)
    chosen = scaffold.choose_features(
        profile.profile_table(frame, "shop"), key_columns=("id",), label="target"
    )
    assert "order_id" in chosen.dropped and "order_id" not in chosen.numeric


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (200, {"dev": 1.0, "staging": 1.0, "prod": 1.0}),  # half: 20 held-out rows, 100 asked
        (1_500, {"dev": 0.5, "staging": 0.5, "prod": 1.0}),  # half: a real subset of prod's
        (40_000, {"dev": 0.5, "staging": 0.5, "prod": 1.0}),
        (336_776, {"dev": 0.05, "staging": 0.1, "prod": 1.0}),
    ],
)
def test_sample_fractions_follow_the_size(rows, expected):
    assert scaffold.sample_fractions(rows) == expected


def test_staging_takes_every_row_only_when_half_would_starve_the_gate_or_a_class():
    defaults = scaffold.ProjectDefaults()
    assert scaffold.sample_fractions(5_000, class_rows=[4_970, 30])["staging"] == 0.5
    assert scaffold.sample_fractions(5_000, class_rows=[4_975, 25])["staging"] == 1.0
    why = scaffold.whole_reason("staging", 5_000, defaults=defaults, class_rows=[4_975, 25])
    assert "about 12 rows of the rarest class, fewer than 1.5 x split.min_class_rows (10)" in why
    assert (
        "about 20 held-out rows, fewer than 1.5 x gate.min_test_rows (100)"
        in scaffold.whole_reason("staging", 200, defaults=defaults)
    )
    small = plan()  # 40 rows: every env takes them all, and staging says why
    assert small.fractions["staging"] == 1.0
    staging = small.files["problems/shop/environments/staging.yaml"]
    assert "# Not a subset of prod's rows: half of them would hold about 4 held-out rows" in staging
    made = plan(table(1_500))
    assert made.fractions == {"dev": 0.5, "staging": 0.5, "prod": 1.0}
    assert "a real subset of prod's rows" in made.files["problems/shop/environments/staging.yaml"]
    assert planned_settings(made, "staging").data.sample_fraction == 0.5


def test_numeric_bounds_keep_headroom_and_a_floor_only_for_counts_and_amounts():
    counts = profile.profile_column(pd.Series([0, 3, 10], name="n"))
    assert contracts.numeric_bounds(counts) == (0, 15)  # half the range each side; never < 0
    temperatures = profile.profile_column(pd.Series([-5.0, 15.0], name="t"))
    assert contracts.numeric_bounds(temperatures) == (-15.0, 25.0)
    # never negative here, but nothing says it cannot be: next winter's -1 passes
    mild = profile.profile_column(pd.Series([5.0, 30.0], name="temperature"))
    assert contracts.numeric_bounds(mild)[0] < 0 and not contracts.amount_like(mild)
    prices = profile.profile_column(pd.Series([5.0, 30.0], name="unitPrice"))
    assert contracts.numeric_bounds(prices) == (0, 43) and contracts.amount_like(prices)
    years = profile.profile_column(pd.Series([2015, 2019, 2023], name="season"))
    assert years.year_like and contracts.numeric_bounds(years) == (2011, None)
    single = profile.profile_column(pd.Series([4.0, 4.0], name="s"))
    low, high = contracts.numeric_bounds(single)
    assert low < 4.0 < high


def test_the_settings_are_valid_and_name_what_was_chosen():
    made = plan()
    assert made.name == "shop"
    base = yaml.safe_load(made.files["problems/shop/environments/base.yaml"])
    assert base["data"] == {"tables": {"shop": "data/shop.csv"}, "key_columns": ["id"],
                            "label": "target", "sample_fraction": 1.0}  # fmt: skip
    assert base["features"] == {"categorical": ["colour"], "numeric": ["size", "count", "amount"],
                                "datetime": []}  # fmt: skip
    assert (
        base["gate"]["primary_metric"] == "roc_auc" and base["monitor"]["max_quality_drop"] == 0.05
    )
    assert "split" not in base and "ignore" not in base["monitor"]  # no time, no year
    assert base["validation"]["parameters"] == {"min_rows": 20}
    for env in ("dev", "staging", "prod"):
        settings = planned_settings(made, env)
        assert settings.data.sample_fraction == 1.0
        assert settings.gate.min_test_rows == 4  # half the ~8 held-out rows this table holds
        assert settings.monitor.min_rows == 10  # a quarter of its 40 rows: a batch of it is watched
    big = plan(table(40_000))
    settings = planned_settings(big, "prod")
    assert settings.monitor.min_rows == 5000  # the project's own: the table allows it


def test_regression_watches_a_tenth_of_the_recorded_rmse():
    # monitor.max_quality_drop is a fraction of the recorded value for a metric with units
    text = plan(kind="regression", label="amount").files["problems/shop/environments/base.yaml"]
    base = yaml.safe_load(text)
    assert base["task"] == "regression" and base["gate"]["primary_metric"] == "rmse"
    assert base["monitor"]["max_quality_drop"] == 0.1 and "10% of the recorded rmse" in text
    assert "target" in base["features"]["categorical"]


def suite_items(text: str) -> list[dict]:
    return yaml.safe_load(text)["expectations"]


def test_the_table_suite_states_types_gaps_ranges_categories_and_the_key(tmp_path):
    text = plan().files["problems/shop/expectations/shop.yaml"]
    items = suite_items(text)
    by = {(item["type"], item["kwargs"].get("column")): item["kwargs"] for item in items}
    assert by[("expect_column_values_to_be_unique", "id")] == {"column": "id"}
    assert by[("expect_column_values_to_not_be_null", "size")] == {"column": "size", "mostly": 0.92}
    assert by[("expect_column_values_to_not_be_null", "colour")] == {"column": "colour"}
    # 2.0 to 8.0 widened by 3.0 each side, but a size is never negative: the floor is 0
    assert by[("expect_column_values_to_be_between", "size")] == {
        "column": "size", "min_value": 0.0, "max_value": 11.0}  # fmt: skip
    assert by[("expect_column_values_to_be_in_set", "target")]["value_set"] == ["no", "yes"]
    assert by[("expect_column_values_to_be_in_set", "colour")]["mostly"] == 0.95
    assert by[("expect_column_values_to_be_in_type_list", "colour")]["type_list"] == [
        "str", "StringDtype"]  # fmt: skip
    assert "observed 3 values (rows): red (20), blue (10), green (10); new values" in text
    assert "# OBSERVED: 1 of 40 rows empty (2.5%)" in text
    assert "# HARD (the key): one row per (id)" in text and "# HARD rules hold by nature" in text
    # a column the model does not read: its type and gaps, no value set
    assert ("expect_column_values_to_be_in_set", "comment") not in by
    assert ("expect_column_values_to_not_be_null", "comment") in by
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    assert len(read_suite(path, {"min_rows": 20}).expectations) == len(items)


def test_a_compound_key_is_checked_as_one():
    frame = table().assign(part=0)
    text = plan(frame, key=("id", "part")).files["problems/shop/expectations/shop.yaml"]
    kwargs = [i["kwargs"] for i in suite_items(text) if "compound" in i["type"]]
    assert kwargs == [{"column_list": ["id", "part"]}]


def test_the_model_input_suite_covers_the_features_in_order():
    made = plan()
    items = suite_items(made.files["problems/shop/expectations/model_input.yaml"])
    assert items[0]["kwargs"] == {"column_list": "$model_columns"}
    columns = list(dict.fromkeys(i["kwargs"]["column"] for i in items if "column" in i["kwargs"]))
    assert columns == ["colour", "size", "count", "amount"]


def test_the_suites_pass_on_the_table_they_were_made_from(tmp_path):
    from ml_project.records import model_input
    from ml_project.validation import MODEL_INPUT, TableValidator

    made = plan()
    for relative, text in made.files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    settings = planned_settings(made, "dev")
    for name, frame in (("shop", table()), (MODEL_INPUT, model_input(settings, table()))):
        report = TableValidator(name, settings=settings, root=tmp_path)(frame, source="test")
        assert report.success, report.failures


def test_a_boolean_column_is_a_number_in_the_model_input(tmp_path):
    from ml_project.records import model_input
    from ml_project.validation import MODEL_INPUT, TableValidator

    frame = table().assign(member=[True, False] * 20)
    made = plan(frame)
    assert "member" in made.features.numeric
    for relative, text in made.files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    settings = planned_settings(made, "dev")
    as_trained = frame.loc[:, settings.features.columns]  # what training validates: True/False
    for name, rows in (
        ("shop", frame),
        (MODEL_INPUT, model_input(settings, frame)),
        (MODEL_INPUT, as_trained),
    ):
        report = TableValidator(name, settings=settings, root=tmp_path)(rows, source="test")
        assert report.success, report.failures


def test_one_table_needs_no_code_and_several_get_a_join_to_write():
    assert plan().files["problems/shop/problem.py"].startswith('"""shop: binary')
    two = scaffold.plan_problem(
        request(shop=Path("/project/data/shop.csv"), stores=Path("/elsewhere/stores.csv")),
        {"shop": table(), "stores": pd.DataFrame({"store": [1, 2], "city": ["a", "b"]})},
        root=ROOT,
    )
    code = two.files["problems/shop/problem.py"]
    assert "def records(tables" in code and "raise NotImplementedError" in code
    assert "ml_project/problem.py says what it gets and returns" in code
    compile(code, "problem.py", "exec")
    base = yaml.safe_load(two.files["problems/shop/environments/base.yaml"])
    assert base["data"]["tables"] == {"shop": "data/shop.csv", "stores": "/elsewhere/stores.csv"}
    assert set(base["validation"]["parameters"]) == {"min_rows_shop", "min_rows_stores"}
    assert "problems/shop/expectations/stores.yaml" in two.files


@pytest.mark.parametrize(
    ("kwargs", "frame_change", "error", "says"),
    [
        ({"label": "nope"}, None, ConfigError, "--label nope: no such column"),
        ({"key": ("id", "nope")}, None, ConfigError, "--key nope: no such column"),
        ({}, {"target": "yes"}, DataError, "every row holds the same value"),
        ({}, {"id": 1}, DataError, "rows share their key"),
        ({"label": "colour"}, None, ConfigError, "--kind binary needs two classes"),
        ({"kind": "multiclass"}, None, ConfigError, "use --kind binary"),
        ({"kind": "regression"}, None, ConfigError, "needs a numeric label"),
        ({"label": "id"}, None, ConfigError, "also a --key column"),
    ],
)
def test_a_bad_request_is_refused(kwargs, frame_change, error, says):
    frame = table().assign(**(frame_change or {}))
    with pytest.raises(error, match=says):
        plan(frame, **kwargs)


@pytest.mark.parametrize(
    ("tables", "name", "expected"),
    [({"Sales 2024": None}, None, "sales_2024"), ({"2024": None}, None, "problem_2024"),
     ({"x": None}, "my_shop", "my_shop")],
)  # fmt: skip
def test_the_name_is_a_package_name(tables, name, expected):
    made = scaffold.InitRequest(tables=tables, label="y", key_columns=("id",), kind="binary",
                                name=name)  # fmt: skip
    assert scaffold.problem_name(made) == expected


def test_a_bad_name_or_table_option_is_refused():
    with pytest.raises(ConfigError, match="--name"):
        scaffold.problem_name(scaffold.InitRequest({"x": None}, "y", ("id",), "binary", "My-Shop"))
    with pytest.raises(ConfigError, match="NAME=PATH"):
        scaffold.init_tables(["shop.csv"])
    with pytest.raises(ConfigError, match="model_input"):
        scaffold.init_tables(["model_input=x.csv"])


def test_a_key_column_gets_no_range_new_rows_bring_new_ids():
    frame = pd.DataFrame({"id": range(1, 101), "x": [float(i % 7) for i in range(100)],
                          "unread": [float(i) for i in range(100)]})  # fmt: skip
    table = profile.profile_table(frame, "t")
    suite = contracts.table_suite(table, path="t.csv", key_columns=("id",), label=None,
                                  min_rows="min_rows", read=("x",))  # fmt: skip
    assert "{column: id, min_value" not in suite
    assert "{column: x, min_value" in suite
    assert "{column: unread, min_value" not in suite  # not read: type and gaps only


def test_the_new_problem_becomes_the_default_and_the_comment_stays():
    text = "# project\nproblem: orders         # the folder problems/<problem>/\nseed: 42\n"
    changed, previous = scaffold.with_default_problem(text, "shop")
    assert previous == "orders"
    assert changed == text.replace("problem: orders", "problem: shop")
    assert yaml.safe_load(changed) == {"problem": "shop", "seed": 42}
    unset = scaffold.with_default_problem("seed: 42\n", "shop")
    assert unset == ("problem: shop\nseed: 42\n", None)


def test_the_image_serves_the_new_default_problems_prod_champion():
    """init makes its problem the default: the Dockerfile's served model follows (test_dockerfile
    holds every project to it); a URI that names no champion is the fork's own and stays."""
    text = "FROM runtime AS serve\nARG MODEL_URI=models:/storms_pressure_prod@champion\nENV A=1\n"
    changed = scaffold.with_served_model(text, "shop_prod")
    assert changed == text.replace("storms_pressure_prod", "shop_prod")
    own = "ARG MODEL_URI=runs:/abc/model\n"
    assert scaffold.with_served_model(own, "shop_prod") == own


def test_the_next_steps_say_the_default_changed_and_how_to_choose_another():
    made = plan()
    steps = views.next_steps(replace(made, previous_default="orders"), request())
    assert "Default problem: shop (`problem:` in environments/base.yaml, was orders)" in steps
    assert "ml-project train --env dev" in steps and "make train ENV=staging" in steps
    again = views.next_steps(replace(made, previous_default="shop"), request())
    assert "Default problem" not in again
    assert "base.yaml && git commit" in again  # the Dockerfile was not changed: not to add


def test_the_next_steps_add_the_dockerfile_init_changed():
    """Committing what the steps say leaves a clean tree: staging and prod refuse a dirty one."""
    steps = views.next_steps(replace(plan(), image_changed=True), request())
    assert "git add problems/shop environments/base.yaml Dockerfile && git commit" in steps


def test_a_numeric_column_with_no_value_gets_no_range_and_its_suite_passes(tmp_path):
    from ml_project.validation import TableValidator

    frame = table().assign(empty=np.nan)
    made = plan(frame)
    assert "empty" in made.features.dropped
    suite = made.files["problems/shop/expectations/shop.yaml"]
    assert "OBSERVED: 40 of 40 rows empty (100.0%): no check on gaps" in suite
    assert "{column: empty, min_value" not in suite
    for relative, text in made.files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    report = TableValidator("shop", settings=planned_settings(made, "dev"), root=tmp_path)(
        frame, source="test"
    )
    assert report.success, report.failures


def test_a_class_too_rare_for_a_sample_is_warned_about_with_what_to_do():
    frame = table(400).assign(target=["a"] * 380 + ["b"] * 15 + ["c"] * 5)
    made = plan(frame, kind="multiclass")
    (warning,) = others(made.warnings)
    assert warning.startswith("class 'c' of --label target has 5 rows")
    assert "split.min_class_rows=10, so training in every env will refuse it" in warning
    steps = views.next_steps(made, request(kind="multiclass"))
    assert steps.count("Warning: class") == 1
    assert others(plan().warnings) == ()
    label = profile.profile_table(frame, "shop").column("target")
    fractions = {"dev": 0.1, "staging": 0.5, "prod": 1.0}
    sampled = scaffold.rare_class_warnings(label, "multiclass", fractions, 10, "problems/shop")
    assert [w.split(" of ")[0] for w in sampled] == ["class 'b'", "class 'c'"]
    assert "training in dev, staging will refuse it" in sampled[0]
    assert scaffold.rare_class_warnings(label, "regression", fractions, 10, "x") == ()


def test_init_says_where_it_lowered_the_gates_row_minimum():
    """A small table's envs get a gate.min_test_rows it can meet, and the terminal says so."""
    made = plan()  # 40 rows: every env holds out far fewer rows than the project asks
    lowered = [warning for warning in made.warnings if "gate.min_test_rows lowered" in warning]
    assert len(lowered) == 1, made.warnings
    for env in ("dev", "staging", "prod"):
        overlay = yaml.safe_load(made.files[f"problems/shop/environments/{env}.yaml"])
        value = overlay["gate"]["min_test_rows"]
        assert re.search(rf"\b{env} {value} \(the project asks \d+\)", lowered[0]), lowered[0]
    assert "problems/shop/environments/" in lowered[0]
    defaults = scaffold.ProjectDefaults()
    big = scaffold.small_gate_warnings(100_000, {"dev": 0.1, "prod": 1.0}, defaults, "x")
    assert big == ()  # 2,000 and 20,000 held-out rows: the project's minimums stand
