"""Table sources (ml_project/sources.py): local files and Parquet folders, URLs and SQL queries
(on SQLite, which SQLAlchemy reads without a driver); object stores: test_data_sources.py."""

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from ml_project import data, records, sources
from ml_project.errors import ConfigError, DataError

SECRET = "s3cr3t-pa55"


def test_resolve_each_kind(tmp_path):
    (tmp_path / "events").mkdir()
    (tmp_path / "t.csv").write_text("a\n1\n")
    assert sources.resolve("t.csv", tmp_path) == sources.Source(
        spec="t.csv", kind="file", location=str(tmp_path / "t.csv")
    )
    folder = sources.resolve("events/?columns=a, b", tmp_path)
    assert (folder.kind, folder.columns) == ("folder", ("a", "b"))
    url = sources.resolve("s3://bucket/x.parquet", tmp_path)
    assert (url.kind, str(url)) == ("url", "s3://bucket/x.parquet")
    query = sources.resolve("sql:queries/q.sql@ORDERS_DB", tmp_path, query_root=tmp_path / "c")
    assert (query.kind, query.variable) == ("query", "ORDERS_DB")
    assert query.location == str(tmp_path / "c" / "queries" / "q.sql")
    assert str(query) == f"sql:{tmp_path / 'c' / 'queries' / 'q.sql'}@ORDERS_DB"
    assert sources.resolve("sql:q.sql", tmp_path).variable == sources.DEFAULT_URL_VARIABLE


@pytest.mark.parametrize("spec", ["sql:", "sql:q.sql@not a variable", "t.csv?columns="])
def test_resolve_refuses_malformed_settings(tmp_path, spec):
    with pytest.raises(ConfigError, match="sql:|columns"):
        sources.resolve(spec, tmp_path)


def test_partitioned_parquet_folder_read_with_only_its_columns(tmp_path):
    frame = pd.DataFrame({"id": range(6), "v": [0.5] * 6, "w": list("abcdef"), "day": [1, 2] * 3})
    frame.to_parquet(tmp_path / "events", partition_cols=["day"], index=False)
    source = sources.resolve("events?columns=id,day", tmp_path)
    read = sources.read(source)
    assert list(read.columns) == ["id", "day"]
    assert sorted(read["id"]) == list(range(6))
    whole = records.read_tables({"e": sources.resolve("events", tmp_path)})["e"]
    assert set(whole.columns) == {"id", "v", "w", "day"}
    # not a file: the digest is of the rows read, as for a remote source
    assert sources.digest(source, read) == data.frame_digest(read)


def test_a_local_file_keeps_its_file_digest(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,x\n")
    source = sources.resolve("t.csv", tmp_path)
    frame = sources.read(source)
    assert records.file_digests({"t": source}, {"t": frame}) == {
        "t": data.file_digest(tmp_path / "t.csv")
    }


def _database(tmp_path, monkeypatch, variable="ORDERS_DB"):
    path = tmp_path / "orders.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER, amount REAL, shop TEXT)")
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, 2.5, "a"), (2, 4.0, "b")]
        )
    monkeypatch.setenv(variable, f"sqlite:///{path}")
    (tmp_path / "q.sql").write_text("SELECT id, amount, shop FROM orders ORDER BY id\n")


def test_a_query_reads_the_rows_from_the_database_its_variable_names(tmp_path, monkeypatch):
    _database(tmp_path, monkeypatch)
    frame = sources.read(sources.resolve("sql:q.sql@ORDERS_DB", tmp_path)).sort_values("id")
    assert frame.to_dict("list") == {"id": [1, 2], "amount": [2.5, 4.0], "shop": ["a", "b"]}


def test_a_query_gives_the_same_rows_in_the_same_order_whatever_the_database_returns(
    tmp_path, monkeypatch
):
    """A database returns rows in no set order: the same rows must give the same frame (and so
    the same digest and model) either way."""
    _database(tmp_path, monkeypatch)
    read = {}
    for order in ("ASC", "DESC"):
        (tmp_path / f"{order}.sql").write_text(f"SELECT * FROM orders ORDER BY id {order}\n")
        read[order] = sources.read(sources.resolve(f"sql:{order}.sql@ORDERS_DB", tmp_path))
    pd.testing.assert_frame_equal(read["ASC"], read["DESC"])
    assert data.frame_digest(read["ASC"]) == data.frame_digest(read["DESC"])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELECT * FROM no_such_table", "the query failed .*no such table"),
        ("SELECT * FROM orders WHERE id > 10", "holds no rows"),
        ("", "is empty"),
    ],
)
def test_a_failing_query_is_a_data_error_naming_the_source(tmp_path, monkeypatch, query, message):
    _database(tmp_path, monkeypatch)
    (tmp_path / "q.sql").write_text(query)
    with pytest.raises(DataError, match=message) as caught:
        sources.read(sources.resolve("sql:q.sql@ORDERS_DB", tmp_path))
    assert "sql:" in str(caught.value) and "ORDERS_DB" in str(caught.value)


def test_an_unset_variable_names_itself(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_DB", raising=False)
    (tmp_path / "q.sql").write_text("SELECT 1")
    with pytest.raises(DataError, match="variable NOT_SET_DB holding the database URL is not set"):
        sources.read(sources.resolve("sql:q.sql@NOT_SET_DB", tmp_path))


def test_an_unreachable_database_hides_its_password(tmp_path, monkeypatch):
    from tests.integration.tracking_server import free_port

    url = f"postgresql+psycopg://someone:{SECRET}@127.0.0.1:{free_port()}/nothing"
    monkeypatch.setenv("ORDERS_DB", url)
    (tmp_path / "q.sql").write_text("SELECT 1")
    with pytest.raises(DataError, match="cannot connect") as caught:
        sources.read(sources.resolve("sql:q.sql@ORDERS_DB", tmp_path))
    assert SECRET not in str(caught.value)
    assert "someone:***@127.0.0.1" in str(caught.value)


def test_init_names_a_source_never_a_database_url(tmp_path):
    assert sources.init_spec("data/t.csv") is None
    assert sources.init_spec("/abs/t.parquet") is None
    assert sources.init_spec("queries/o.sql") == "sql:queries/o.sql@DATABASE_URL"
    assert sources.init_spec("sql:q.sql@X") == "sql:q.sql@X"
    assert sources.init_spec("s3://key:token@bucket/o.parquet") == "s3://bucket/o.parquet"
    with pytest.raises(ConfigError, match="never hold a database URL") as caught:
        sources.init_spec(f"postgresql+psycopg://me:{SECRET}@db.example/shop")
    assert SECRET not in str(caught.value)


def test_hide_password():
    assert sources.hide_password(f"postgresql://u:{SECRET}@h/d") == "postgresql://u:***@h/d"
    assert SECRET not in sources.hide_password(f"weird://u:{SECRET}@h/d?x=1")
    # a password in the query (a driver's option, an ODBC connection string) is dropped too
    assert sources.hide_password(f"postgresql://u@h/d?password={SECRET}") == "postgresql://u@h/d"
    odbc = f"mssql+pyodbc:///?odbc_connect=DRIVER%3Dx%3BPWD%3D{SECRET}"
    assert SECRET not in sources.hide_password(odbc)
    source = sources.resolve(f"s3://lake/t.parquet?X-Amz-Signature={SECRET}", Path("."))
    assert SECRET not in str(source)


def test_a_moved_copy_is_read_as_a_plain_file(tmp_path):
    Path(tmp_path / "c.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        sources.read(tmp_path / "c.parquet")
