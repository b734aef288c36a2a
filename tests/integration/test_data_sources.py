"""Tables where teams keep them, end to end through the real CLI: a SQL query against a real
PostgreSQL (tests/integration/postgres.py) and a Parquet object in a bucket of moto's S3 server
(moto_server on a free loopback port, stopped): init, dev, staging, prod, reproduce --strict,
predict and monitor; rows appended to the database, and reproduce of the earlier version
still identical from its snapshot while --from-source reports the change. Then each way a
source fails: one paragraph naming it, without its password, within seconds, nothing
registered. The credentials never reach a tag, param, artifact or output."""

import secrets
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import commit_all, empty_store, git, last_json, make_project_copy, run_cli
from tests.integration.test_faults_cli import clean_failure
from tests.integration.test_init_cli import visits
from tests.integration.tracking_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM = "lake_visits"
ROWS = 1500
QUERY = "SELECT visit_id, minutes, pages, device, bought FROM visits ORDER BY visit_id\n"
DEVICES = pd.DataFrame({"device": ["phone", "desktop", "tablet"], "screen": [6.1, 24.0, 11.0]})
FAST_S = 30  # a failing source is reported within seconds (the CLI's start-up included)


@pytest.fixture(scope="module")
def bucket():
    """moto's S3 server on a free loopback port, with a bucket `lake`; its environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    environ = {
        "AWS_ACCESS_KEY_ID": "lake-reader",
        "AWS_SECRET_ACCESS_KEY": "aws-" + secrets.token_hex(12),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        yield environ
    finally:
        server.stop()


def put_object(environ: dict, key: str, frame: pd.DataFrame) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=environ["AWS_ENDPOINT_URL"],
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
        region_name=environ["AWS_DEFAULT_REGION"],
    )
    existing = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
    if "lake" not in existing:
        client.create_bucket(Bucket="lake")
    client.put_object(Bucket="lake", Key=key, Body=frame.to_parquet(index=False))


def insert_visits(postgres, frame: pd.DataFrame) -> None:
    rows = ", ".join(
        f"({row.visit_id}, {'NULL' if pd.isna(row.minutes) else row.minutes}, {row.pages}, "
        f"'{row.device}', '{row.bought}')"
        for row in frame.itertuples(index=False)
    )
    postgres.psql(f"INSERT INTO visits VALUES {rows}", database="shop")
    postgres.psql("GRANT SELECT ON visits TO shop_reader", database="shop")


@pytest.fixture(scope="module")
def lake(postgres, bucket, tmp_path_factory):
    """A project whose `init` read its first table from PostgreSQL (a query file) and its
    second from the bucket, committed; the environment holding the credentials."""
    password = "pg-" + secrets.token_hex(12)
    url = postgres.create_database("shop", owner="shop_reader", password=password)
    postgres.psql(
        "CREATE TABLE visits (visit_id integer PRIMARY KEY, minutes double precision, "
        "pages integer, device text, bought text)",
        database="shop",
    )
    insert_visits(postgres, visits("binary", ROWS))
    put_object(bucket, "devices.parquet", DEVICES)
    root = make_project_copy(tmp_path_factory.mktemp("lake") / "project")
    (root / "queries").mkdir()
    (root / "queries" / "visits.sql").write_text(QUERY)
    environ = {
        **bucket,
        "VISITS_DB": url.replace("postgresql://", "postgresql+psycopg://"),
        "MLFLOW_TRACKING_URI": empty_store(tmp_path_factory.mktemp("lake-store")),
    }
    done = cli(
        root, environ, "init", "--table", "visits=sql:queries/visits.sql@VISITS_DB",
        "--table", "devices=s3://lake/devices.parquet", "--label", "bought", "--key",
        "visit_id", "--kind", "binary", "--name", PROBLEM,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    overlay = root / "problems" / PROBLEM / "environments" / "dev.yaml"
    text = overlay.read_text()  # init's dev overlay holds a data: section (its sample)
    assert text.count("\ndata:\n") == 1, text
    overlay.write_text(text.replace("\ndata:\n", "\ndata:\n  snapshot: {keep: false}\n"))
    commit_all(root, "init: visits from the shop database, devices from the lake")
    return {"root": root, "env": environ, "password": password, "postgres": postgres}


def cli(root: Path, environ: dict, *args: str):
    return run_cli(*args, cwd=root, tracking_uri=environ["MLFLOW_TRACKING_URI"], env=environ)


def secrets_of(lake: dict) -> list[str]:
    return [lake["password"], lake["env"]["AWS_SECRET_ACCESS_KEY"]]


def assert_no_secret(lake: dict, *texts: str) -> None:
    for secret in secrets_of(lake):
        for text in texts:
            assert secret not in text


def test_a_query_and_an_object_go_the_whole_path(lake, tmp_path):
    root, environ = lake["root"], lake["env"]
    outputs = []
    base = (root / "problems" / PROBLEM / "environments" / "base.yaml").read_text()
    assert "visits: 'sql:queries/visits.sql@VISITS_DB'" in base
    assert "devices: 's3://lake/devices.parquet'" in base
    assert_no_secret(lake, base)
    versions = {}
    for env in ("dev", "staging", "prod"):
        done = cli(root, environ, "train", "--env", env, "--json")  # dev keeps no snapshot
        outputs += [done.stdout, done.stderr]
        assert done.returncode == 0, done.stderr
        result = last_json(done.stdout)
        assert result["gate"]["status"] == "passed", result["gate"]
        versions[env] = result
    assert versions["prod"]["rows"]["labelled"] == ROWS
    client = MlflowClient(environ["MLFLOW_TRACKING_URI"])
    staging = client.get_run(versions["staging"]["run_id"]).data.tags
    prod = client.get_run(versions["prod"]["run_id"]).data.tags
    assert staging["data.snapshot"] == "subset"  # staging keeps the rows of its sample only
    assert int(staging["data.table.visits.snapshot_rows"]) < ROWS
    assert prod["data.snapshot"] == "kept"
    assert prod["data.table.visits.snapshot_rows"] == str(ROWS)
    assert prod["data.table.visits.path"] == "sql:" + str(root / "queries/visits.sql@VISITS_DB")

    done = cli(root, environ, "reproduce", "--env", "dev", "--version", "1", "--json")
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stdout + done.stderr  # today's rows: still the same
    kept_none = "data: read from today's sources: the run kept no snapshot of its rows (off "
    assert kept_none in done.stdout and "so the data is not kept" in done.stdout
    done = cli(root, environ, "reproduce", "--env", "staging", "--version", "1", "--strict",
               "--json")  # fmt: skip
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_json(done.stdout)["verdict"] == "identical"
    assert "data: read from the snapshots kept at training" in done.stdout

    batch = tmp_path / "batch.parquet"
    rows = visits("binary", ROWS).merge(DEVICES, on="device", how="left")
    rows.to_parquet(batch, index=False)
    scored = tmp_path / "scored.parquet"
    done = cli(root, environ, "predict", "--env", "prod", "--input", str(batch),
               "--output", str(scored))  # fmt: skip
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr
    assert pd.read_parquet(scored)["prediction"].notna().all()
    done = cli(root, environ, "monitor", "--env", "prod", "--input", str(batch), "--labels",
               "--json")  # fmt: skip
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stdout + done.stderr

    # the source moves on: rows appended to the table in the database
    insert_visits(lake["postgres"], visits("binary", 300, seed=9).assign(
        visit_id=lambda frame: frame["visit_id"] + 100_000))  # fmt: skip
    done = cli(root, environ, "reproduce", "--env", "prod", "--version", "1", "--strict",
               "--json")  # fmt: skip
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_json(done.stdout)["verdict"] == "identical"
    assert "data: read from the snapshots kept at training (devices, visits)" in done.stdout
    done = cli(root, environ, "reproduce", "--env", "prod", "--version", "1", "--from-source",
               "--json")  # fmt: skip
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 6, done.stdout + done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "data_changed"
    assert "data: read from today's sources (--from-source)" in done.stdout
    sources = next(step for step in report["steps"] if step["step"] == "sources")
    assert sources["files"]["visits"]["today"]["rows"] == ROWS + 300
    assert sources["files"]["devices"]["sha256_equal"] is True
    # the next release trains on the grown table: the gate rebuilds the champion's training
    # rows from its snapshot to compare both on rows neither saw (a few hundred here: an AUC's
    # noise on them is about 0.01, so prod's tolerance of 0.005, meant for full data, would
    # refuse or pass by chance as the rows' order changes)
    done = cli(root, environ, "train", "--env", "prod", "--set", "gate.tolerance=0.03", "--json")
    outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr
    grown = last_json(done.stdout)
    assert grown["rows"]["labelled"] == ROWS + 300 and grown["gate"]["status"] == "passed"
    assert grown["gate"]["champion_version"] == "1" and grown["gate"]["comparison"]

    # no credential in any output, tag, param or artifact
    assert_no_secret(lake, *outputs)
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        assert_no_secret(lake, *run.data.tags.values(), *run.data.params.values())
    store = Path(environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")).parent
    for folder in (store, root):
        for path in folder.rglob("*"):
            if path.is_file() and ".git" not in path.parts:
                content = path.read_bytes()
                assert not any(s.encode() in content for s in secrets_of(lake)), path
    assert git(root, "status", "--porcelain") == ""


def with_env(lake: dict, **changes: str) -> dict:
    return {**lake["env"], **changes}


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("database unreachable", "cannot connect"),
        ("wrong password", "cannot connect"),
        ("failing query", "the query failed"),
        ("missing object", "no such object"),
        ("bucket unreachable", "cannot be read"),
        ("bucket refuses the key", "access denied: check the credentials"),
    ],
)
def test_a_failing_source_is_one_paragraph_naming_it(lake, tmp_path, case, says, monkeypatch):
    """Each failure: exit 3 (data), one paragraph naming the source without its password,
    within seconds; nothing is registered."""
    root = lake["root"]
    store = empty_store(tmp_path)
    environ = with_env(lake, MLFLOW_TRACKING_URI=store)
    args: list[str] = []
    url = environ["VISITS_DB"]
    if case == "database unreachable":
        environ["VISITS_DB"] = url.rsplit("@", 1)[0] + f"@127.0.0.1:{free_port()}/shop"
    elif case == "wrong password":
        environ["VISITS_DB"] = url.replace(lake["password"], "not-" + lake["password"])
    elif case == "failing query":
        broken = tmp_path / "broken.sql"
        broken.write_text("SELECT visit_id, no_such_column FROM visits")
        args = ["--set", f"data.tables.visits=sql:{broken}@VISITS_DB"]
    elif case == "missing object":
        args = ["--set", "data.tables.devices=s3://lake/gone.parquet"]
    elif case == "bucket refuses the key":  # moto checks every request's key from now on
        from moto import settings

        monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    else:
        environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = cli(root, environ, "train", "--env", "dev", *args)
    seconds = time.monotonic() - started
    message = clean_failure(done, 3, "data error")
    assert says in message
    assert ("sql:" in message) if "database" in case or "query" in case or "password" in case \
        else ("s3://lake/" in message)  # fmt: skip
    assert_no_secret(lake, done.stdout, done.stderr)
    assert seconds < FAST_S, seconds
    assert MlflowClient(store).search_registered_models() == []
    assert git(root, "status", "--porcelain") == ""


def test_a_snapshot_location_in_a_bucket_is_written_once(bucket, tmp_path, monkeypatch):
    """data.snapshot.location as an s3:// URL: <location>/<table>/<sha256>.parquet, stored once
    (the same content is not written again) and read back by reproduce's fetch."""
    import boto3

    from ml_project import data, snapshots

    for key, value in bucket.items():
        monkeypatch.setenv(key, value)
    put_object(bucket, "placeholder.parquet", DEVICES)  # the bucket exists
    frame = pd.DataFrame({"id": [1, 2, 3], "amount": [2.5, 4.0, None]})
    digest = data.frame_digest(frame)
    kept = snapshots.write_local(tmp_path / "a", "orders", object(), frame, whole=False)
    uri = snapshots.store(kept, "s3://lake/snapshots", root=tmp_path)
    assert uri == f"s3://lake/snapshots/orders/{digest}.parquet"
    client = boto3.client("s3", endpoint_url=bucket["AWS_ENDPOINT_URL"])
    key = f"snapshots/orders/{digest}.parquet"
    first = client.head_object(Bucket="lake", Key=key)["LastModified"]
    time.sleep(1.1)  # S3 times are in seconds
    again = snapshots.write_local(tmp_path / "b", "orders", object(), frame, whole=False)
    assert snapshots.store(again, "s3://lake/snapshots", root=tmp_path) == uri
    assert client.head_object(Bucket="lake", Key=key)["LastModified"] == first
    back = snapshots.fetch(uri, tmp_path / "back", tracking_uri="")
    assert data.frame_digest(pd.read_parquet(back)) == digest
