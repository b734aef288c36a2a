"""Safe retraining on problems the project has never seen, through the real CLI.

A table of orders with an ISO timestamp goes through `init`, dev, staging, prod, `predict`,
serving and `monitor` with no hand edit, holding out its newest rows; next month's legitimate
data (a new year, a new value in a column the model does not read, a label above the old
maximum) retrains prod cleanly while physically bad data is refused; a two-table problem's
served model refuses a bad joined column with 400. Data: tests/timeline.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests import timeline
from tests.conftest import commit_all, empty_store, last_json, make_project_copy, run_cli
from tests.integration.test_serving import post, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HISTORY = timeline.month_starts("2025-01", 24)  # 2025-01 .. 2026-12
NEXT = timeline.month_starts("2027-01", 1)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def orders(tmp_path_factory) -> dict:
    """A project with `ml-project init` run on two years of orders, committed, trained in
    dev, staging and prod (in that order, one store)."""
    base = tmp_path_factory.mktemp("orders")
    root = make_project_copy(base / "project")
    files = base / "data"
    files.mkdir()
    history = timeline.orders(HISTORY, rows_per_month=500)
    history.to_csv(files / "orders.csv", index=False)
    uri = empty_store(base)
    init = run_cli(
        "init", "--table", f"orders={files / 'orders.csv'}", "--label", "amount",
        "--key", "order_id", "--kind", "regression", cwd=root, tracking_uri=uri,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr + init.stdout
    commit_all(root, "init orders")
    results = {}
    for env in ("dev", "staging", "prod"):
        done = run_cli("train", "--env", env, "--json", cwd=root, tracking_uri=uri)
        assert done.returncode == 0, f"{env}: {done.stderr[-3000:]}"
        results[env] = last_json(done.stdout)
    return {
        "root": root, "uri": uri, "files": files, "history": history, "init": init.stdout,
        "results": results,
    }  # fmt: skip


def base_yaml(root: Path, name: str = "orders") -> dict:
    """A problem's environments/base.yaml as written."""
    return yaml.safe_load((root / f"problems/{name}/environments/base.yaml").read_text())


def test_init_reads_the_timestamp_as_time_and_splits_by_it(orders):
    settings = base_yaml(orders["root"])
    assert "placed_at" in settings["features"]["datetime"]
    assert settings["split"]["time_column"] == "placed_at"
    # never read: one value only, and free text
    read = [*settings["features"]["categorical"], *settings["features"]["numeric"]]
    assert "currency" not in read


def test_staging_trains_on_a_real_subset(orders):
    rows = {env: result["rows"]["used"] for env, result in orders["results"].items()}
    assert rows["staging"] < rows["prod"] == len(orders["history"])


def test_the_held_out_rows_are_the_newest(orders):
    """prod uses every row: its held-out side is exactly the newest test_fraction of them."""
    result = orders["results"]["prod"]
    run = _client(orders["uri"]).get_run(result["run_id"])
    held_out = result["rows"]["test"]
    newest = orders["history"].sort_values("placed_at").tail(held_out)
    cut = run.data.tags["split.cutoff"]
    assert pd.Timestamp(cut) <= pd.Timestamp(newest["placed_at"].min())
    assert run.data.tags["split.kind"] == "time"
    older = orders["history"].sort_values("placed_at").head(len(orders["history"]) - held_out)
    assert pd.Timestamp(older["placed_at"].max()) <= pd.Timestamp(cut)


def test_predict_and_serving_take_iso_text_and_refuse_a_bad_timestamp(orders, tmp_path):
    root, uri = orders["root"], orders["uri"]
    batch = timeline.orders(NEXT, rows_per_month=300).drop(columns=["amount"])
    batch.to_csv(tmp_path / "batch.csv", index=False)
    done = run_cli(
        "predict", "--env", "prod", "--input", str(tmp_path / "batch.csv"),
        "--output", str(tmp_path / "scored.csv"), "--json", cwd=root, tracking_uri=uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert len(scored) == 300 and scored["prediction"].notna().all()

    model_uri = "models:/orders_prod@champion"
    with serving(uri, model_uri, tmp_path / "server.log", project=root) as url:
        rows = batch.head(3)
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        status, reply = post(url, json.dumps(body).encode())
        assert status == 200, reply
        assert len(reply["predictions"]) == 3
        assert reply["predictions"] == pytest.approx(scored["prediction"].head(3).tolist())
        bad = rows.copy()
        bad.loc[bad.index[1], "placed_at"] = "next tuesday"
        body = {"dataframe_split": json.loads(bad.to_json(orient="split", index=False))}
        status, reply = post(url, json.dumps(body).encode())
        assert status == 400, reply
        assert "placed_at" in reply["message"] and "next tuesday" in reply["message"]


def test_monitor_treats_time_as_time(orders, tmp_path):
    """A batch from the month after training: the timestamp and the year moved, by design;
    neither is called drift."""
    batch = timeline.orders(NEXT, rows_per_month=600)
    batch.to_csv(tmp_path / "next.csv", index=False)
    done = run_cli(
        "monitor", "--env", "dev", "--input", str(tmp_path / "next.csv"), "--labels", "--json",
        cwd=orders["root"], tracking_uri=orders["uri"],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = last_json(done.stdout)
    drifted = [row["feature"] for row in report["features"] if row["status"] == "drift"]
    assert drifted == []


def _next_month(orders: dict, tmp_path: Path, change=None) -> Path:
    """Two years and next month's orders, in one file outside the repository (as prod reads
    the current full data), after `change` edits next month's rows."""
    month = timeline.orders(NEXT, rows_per_month=500)
    if change is not None:
        month = change(month)
    path = tmp_path / "orders.csv"
    pd.concat([orders["history"], month], ignore_index=True).to_csv(path, index=False)
    return path


def _legitimate(month: pd.DataFrame) -> pd.DataFrame:
    month = month.copy()
    month.loc[month.index[:40], "currency"] = "USD"  # new value, column not read
    month.loc[month.index[7], "amount"] = 400.0  # above the old maximum, within the domain
    return month


def test_next_months_data_retrains_prod_cleanly(orders, tmp_path):
    path = _next_month(orders, tmp_path, _legitimate)
    assert pd.read_csv(path)["year"].max() == 2027
    done = run_cli(
        "train", "--env", "prod", "--table", f"orders={path}", "--json",
        cwd=orders["root"], tracking_uri=orders["uri"],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = last_json(done.stdout)
    assert result["gate"]["passed"] is True
    assert result["rows"]["used"] == len(orders["history"]) + 500


def _one_cell(column: str, row: int, value):
    """A change of next month's rows: `value` in `column` of row `row`."""

    def change(month: pd.DataFrame) -> pd.DataFrame:
        month = month.astype({column: object})
        month.loc[month.index[row], column] = value
        return month

    return change


@pytest.mark.parametrize(
    ("case", "change", "says"),
    [
        ("negative count", _one_cell("basket", 3, -2), "basket"),
        ("unparseable time", _one_cell("placed_at", 5, "31/02/2027"), "placed_at"),
        ("negative label", _one_cell("amount", 9, -5.0), "amount"),
        ("duplicate key", _one_cell("order_id", 2, 2432500001), "order_id"),
    ],
)
def test_physically_bad_data_is_refused_and_nothing_moves(orders, tmp_path, case, change, says):
    client = _client(orders["uri"])
    before = client.get_model_version_by_alias("orders_prod", "champion").version
    versions = len(client.search_model_versions("name='orders_prod'"))
    path = _next_month(orders, tmp_path, change)
    done = run_cli(
        "train", "--env", "prod", "--table", f"orders={path}",
        cwd=orders["root"], tracking_uri=orders["uri"],
    )  # fmt: skip
    assert done.returncode == 3, f"{case}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    assert says in done.stderr and "Traceback" not in done.stderr
    assert client.get_model_version_by_alias("orders_prod", "champion").version == before
    assert len(client.search_model_versions("name='orders_prod'")) == versions


def init_visits(tmp_path: Path, visits: pd.DataFrame, customers: pd.DataFrame):
    """A project copy where `init` ran on the two tables (written outside it): its root, a
    store URI and init's completed process."""
    root = make_project_copy(tmp_path / "project")
    files = tmp_path / "data"
    files.mkdir()
    visits.to_csv(files / "visits.csv", index=False)
    customers.to_csv(files / "customers.csv", index=False)
    uri = empty_store(tmp_path)
    init = run_cli(
        "init", "--table", f"visits={files / 'visits.csv'}",
        "--table", f"customers={files / 'customers.csv'}", "--label", "bought",
        "--key", "visit_id", "--kind", "binary", cwd=root, tracking_uri=uri,
    )  # fmt: skip
    return root, uri, init


def test_a_two_table_problems_served_model_refuses_a_bad_joined_column(tmp_path):
    """init joins the dimension table itself; the model-input suite and the rules inside the
    model cover its columns, so the server answers 400 to an impossible age or unknown segment."""
    people = timeline.customers()
    root, uri, init = init_visits(tmp_path, timeline.visits(people), people)
    assert init.returncode == 0, init.stderr + init.stdout
    suite = (root / "problems/visits/expectations/customers.yaml").read_text()
    assert "customer_id" in suite and "unique" in suite
    commit_all(root, "init visits")
    done = run_cli("train", "--env", "dev", "--json", cwd=root, tracking_uri=uri)
    assert done.returncode == 0, done.stderr[-3000:]
    features = base_yaml(root, "visits")["features"]
    assert {"age", "segment"} <= {*features["categorical"], *features["numeric"]}

    rows = timeline.visits(people, rows=3, seed=9).merge(people, on="customer_id")
    with serving(uri, "models:/visits_dev@champion", tmp_path / "server.log", project=root) as url:
        body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
        status, reply = post(url, json.dumps(body).encode())
        assert status == 200, reply
        for column, value in (("age", -4), ("segment", "martian")):
            bad = rows.astype({column: object})
            bad.loc[bad.index[0], column] = value
            body = {"dataframe_split": json.loads(bad.to_json(orient="split", index=False))}
            status, reply = post(url, json.dumps(body).encode())
            assert status == 400, reply
            assert f"column {column!r}" in reply["message"]


RECORDS = '''
import pandas as pd


def records(tables, params):
    """Each visit with its customer's age and segment (the key is named apart)."""
    people = tables["customers"].rename(columns={"id": "customer"})
    return tables["visits"].merge(people, on="customer", how="left", validate="many_to_one")
'''


def test_records_written_by_hand_get_a_model_input_suite_of_their_columns(tmp_path):
    """init cannot guess this join (the key is named apart): the user writes records() and lists
    the joined columns as features; `model-input-suite` profiles what records() makes, and the
    rules then guard the joined columns in predict too."""
    people = timeline.customers()
    root, uri, init = init_visits(
        tmp_path,
        timeline.visits(people).rename(columns={"customer_id": "customer"}),
        people.rename(columns={"customer_id": "id"}),
    )
    assert init.returncode == 0 and "Write records() in problems/visits" in init.stdout
    folder = root / "problems" / "visits"
    (folder / "problem.py").write_text(RECORDS)
    settings = base_yaml(root, "visits")
    settings["features"]["numeric"] = [*settings["features"]["numeric"], "age"]
    settings["features"]["categorical"] = [*settings["features"]["categorical"], "segment"]
    (folder / "environments" / "base.yaml").write_text(yaml.safe_dump(settings))

    done = run_cli("model-input-suite", "--env", "dev", cwd=root, tracking_uri=uri)
    assert done.returncode == 2 and "pass --force" in done.stderr  # init wrote one: yours
    done = run_cli("model-input-suite", "--env", "dev", "--force", cwd=root, tracking_uri=uri)
    assert done.returncode == 0, done.stderr
    suite = (folder / "expectations" / "model_input.yaml").read_text()
    assert "column: age" in suite and "column: segment" in suite
    commit_all(root, "records() and the joined columns")
    done = run_cli("train", "--env", "dev", "--json", cwd=root, tracking_uri=uri)
    assert done.returncode == 0, done.stderr[-3000:]

    batch = timeline.visits(people, rows=50, seed=5).merge(people, on="customer_id")
    batch.loc[batch.index[4], "age"] = -4
    batch.to_csv(tmp_path / "batch.csv", index=False)
    done = run_cli(
        "predict", "--env", "dev", "--input", str(tmp_path / "batch.csv"),
        "--output", str(tmp_path / "scored.csv"), cwd=root, tracking_uri=uri,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "age" in done.stderr and "Traceback" not in done.stderr
