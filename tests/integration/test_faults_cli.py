"""Faults through the real CLI: the store, interruptions, failures after a run started, secrets.

Each case asserts the exit code, the one-paragraph message, no traceback, and what the store
holds afterwards (nothing registered, no alias moved, no run left RUNNING). Synthetic problems
only (tests/synthetic.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ml_project import tracking
from tests.conftest import copy_store, empty_store, last_json, run_cli
from tests.integration.tracking_server import free_port
from tests.synthetic import make_table

pytestmark = pytest.mark.integration

BINARY = "synthetic_binary"
MODEL = f"{BINARY}_dev"
SECRET = "s3cret-Passw0rd"


def fresh_store(folder: Path) -> str:
    """An empty, initialised sqlite store (so a test may read it while a command writes)."""
    uri = empty_store(folder)
    MlflowClient(uri).search_experiments()  # its Default experiment
    return uri


def clean_failure(done: subprocess.CompletedProcess, code: int, label: str) -> str:
    """The command failed with `code`, one `ml-project: <label>:` paragraph, no traceback."""
    output = done.stdout + done.stderr
    assert done.returncode == code, output[-3000:]
    assert f"ml-project: {label}:" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in output, output[:4000]
    return done.stderr


def registered_models(uri: str) -> list:
    return MlflowClient(uri).search_registered_models()


def store_digest(uri: str) -> str:
    return hashlib.sha256(Path(uri.removeprefix("sqlite:///")).read_bytes()).hexdigest()


# --- the store, checked before any data is read ----------------------------------------------


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers (a hung tracking server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize("command", ["train", "show", "predict", "monitor"])
def test_a_server_that_does_not_answer_fails_within_seconds(
    synthetic_project, silent_server, command, tmp_path
):
    uri = f"http://ci-user:{SECRET}@127.0.0.1:{silent_server}"
    batch = tmp_path / "batch.csv"
    make_table("binary", rows=600).to_csv(batch, index=False)
    scoring = {
        "predict": ["--input", str(batch), "--output", str(tmp_path / "scored.parquet")],
        "monitor": ["--input", str(batch)],
    }
    start = time.monotonic()
    done = run_cli(
        command, "--env", "dev", "--problem", BINARY, *scoring.get(command, []),
        cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    message = clean_failure(done, 9, "tracking store error")
    assert f"http://***@127.0.0.1:{silent_server}" in message
    assert SECRET not in done.stdout + done.stderr
    assert "reachable" in message
    assert elapsed < 60, f"{elapsed:.0f} s (MLflow's default retries take ~250 s)"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["batch.csv"]  # nothing written


def test_a_store_another_writer_holds_fails_before_reading(synthetic_project, tmp_path):
    uri = fresh_store(tmp_path / "store")
    before = store_digest(uri)
    holder = sqlite3.connect(uri.removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")  # another process's write, never committed
    try:
        done = run_cli(
            "train", "--env", "dev", "--problem", BINARY,
            cwd=synthetic_project, tracking_uri=uri,
        )  # fmt: skip
    finally:
        holder.rollback()
        holder.close()
    message = clean_failure(done, 9, "tracking store error")
    assert "cannot be written" in message and "Nothing was read or registered" in message
    assert store_digest(uri) == before
    assert registered_models(uri) == []


def test_an_artifact_folder_that_is_a_file_fails_before_reading(synthetic_project, tmp_path):
    uri = fresh_store(tmp_path / "store")
    (tmp_path / "store" / "mlartifacts").write_text("not a folder")
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, cwd=synthetic_project, tracking_uri=uri
    )
    message = clean_failure(done, 9, "tracking store error")
    assert "mlartifacts" in message and "not a folder" in message
    assert registered_models(uri) == []


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` and its files unwritable, even for root (the immutable attribute, which root
    obeys, where chattr works; the mode bits otherwise)."""
    paths = [*folder.iterdir(), folder]
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable:
        subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    else:
        for path in paths:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_a_read_only_store_is_read_by_show_and_predict_and_refused_by_train(
    synthetic_project, synthetic_models, tmp_path
):
    source = Path(synthetic_models["binary"]["uri"].removeprefix("sqlite:///"))
    folder = tmp_path / "read-only"
    folder.mkdir()
    shutil.copy2(source, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    before = store_digest(uri)
    batch = tmp_path / "batch.csv"
    make_table("binary", rows=50).to_csv(batch, index=False)
    with read_only(folder):
        shown = run_cli("show", "--env", "dev", "--problem", BINARY,
                        cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
        scored = run_cli("predict", "--env", "dev", "--problem", BINARY, "--input", str(batch),
                         "--output", str(tmp_path / "scored.parquet"),
                         cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
        trained = run_cli("train", "--env", "dev", "--problem", BINARY,
                          cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert f"{MODEL} (env dev" in shown.stdout
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert (tmp_path / "scored.parquet").is_file()
    assert "read-only" in clean_failure(trained, 9, "tracking store error")
    assert sorted(path.name for path in folder.iterdir()) == ["mlflow.db"]  # no lock, no journal
    assert store_digest(uri) == before


def test_show_on_a_missing_store_says_so_and_creates_nothing(synthetic_project, tmp_path):
    uri = f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"
    done = run_cli(
        "show", "--env", "dev", "--problem", BINARY, cwd=synthetic_project, tracking_uri=uri
    )
    assert "does not exist" in clean_failure(done, 9, "tracking store error")
    assert not (tmp_path / "nowhere").exists()


# --- nothing registered before everything that can fail before a verdict has passed ----------


def rare_c(frame):
    """Class c in the first two rows only."""
    return frame.assign(target=frame["target"].replace("c", "b").where(frame.index > 1, "c"))


@pytest.mark.parametrize(
    ("kind", "relabel", "extra", "expected"),
    [
        ("binary", lambda frame: frame.assign(target="yes"), (), "has one class (yes) in all"),
        ("multiclass", rare_c, (), "The class(es) c (2 rows) of the label target have fewer "
                                   "than split.min_class_rows=10"),
        (  # allowed that rare, one side of the split lacks it
            "multiclass", rare_c, ("--set", "split.min_class_rows=1"),
            "class(es) c of the label target are missing from the",
        ),
    ],
)  # fmt: skip
def test_labels_a_classifier_cannot_be_judged_on_register_nothing(
    synthetic_project, tmp_path, kind, relabel, extra, expected
):
    table = tmp_path / f"{kind}.csv"
    relabel(make_table(kind)).to_csv(table, index=False)
    uri = fresh_store(tmp_path / "store")
    problem = f"synthetic_{kind}"
    done = run_cli(
        "train", "--env", "dev", "--problem", problem, "--table", f"{problem}={table}", *extra,
        cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    assert expected in clean_failure(done, 3, "data error")
    assert registered_models(uri) == []


def test_a_failure_after_the_run_started_ends_it_failed_and_registers_nothing(
    synthetic_project, tmp_path
):
    uri = fresh_store(tmp_path / "store")
    broken = tmp_path / "artifacts-here-is-a-file"
    broken.write_text("")
    client = MlflowClient(uri)
    experiment = client.create_experiment(MODEL, artifact_location=broken.as_uri())
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, cwd=synthetic_project, tracking_uri=uri
    )
    message = clean_failure(done, 10, "training failed")
    (run,) = client.search_runs([experiment])
    assert f"run {run.info.run_id} started" in message and "nothing was registered" in message
    assert run.info.status == "FAILED"
    assert "training did not finish" in run.data.tags["ml_project.failure"]
    assert registered_models(uri) == []


def injected(code: str, tmp_path: Path, project: Path) -> dict[str, str]:
    """The environment of a CLI process that runs `code` at start-up (a sitecustomize module
    first on its path, in tmp_path/inject): how these tests put a fault inside the real CLI."""
    folder = tmp_path / "inject"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": f"{folder}{os.pathsep}{project}"}


def train_with_fault(code: str, *, uri: str, project: Path, tmp_path: Path):
    """`ml-project train` of the binary synthetic problem in dev, `code` run at its start-up."""
    return run_cli(
        "train", "--env", "dev", "--problem", BINARY, cwd=project, tracking_uri=uri,
        env=injected(code, tmp_path, project),
    )  # fmt: skip


FAULT_IN_THE_FIT = """
from ml_project import pipeline

def fit_and_score(*args, **kwargs):
    raise MemoryError("the fit ran out of memory")

pipeline.fit_and_score = fit_and_score
"""


def test_a_crash_during_the_fit_leaves_a_failed_run_that_says_what_it_read(
    synthetic_project, tmp_path
):
    """The run starts before the data is read, so a fit that dies still has its record."""
    uri = fresh_store(tmp_path / "store")
    done = train_with_fault(FAULT_IN_THE_FIT, uri=uri, project=synthetic_project, tmp_path=tmp_path)
    message = clean_failure(done, 10, "training failed")
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(MODEL).experiment_id])
    assert f"run {run.info.run_id} started" in message and "nothing was registered" in message
    assert run.info.status == "FAILED"
    assert "MemoryError: the fit ran out of memory" in run.data.tags["ml_project.failure"]
    assert run.data.tags["data.tables"] == BINARY  # what it had read
    assert registered_models(uri) == []


FAULT_IN_THE_GATE = """
import os, signal, time
from ml_project import promotion

def gate_version(*args, **kwargs):  # what the fault does, once the version is registered
    if os.environ["FAULT"] == "SIGTERM":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    if os.environ["FAULT"] == "SIGTERM, then an error while unwinding":
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        finally:  # e.g. a file closed under a write the signal cut short
            raise OSError(9, "Bad file descriptor")
    raise RuntimeError("the gate broke")

promotion.gate_version = gate_version
"""


@pytest.mark.parametrize(
    ("fault", "code", "label"),
    [("error", 10, "training failed"), ("SIGTERM", 143, "interrupted"),
     ("SIGTERM, then an error while unwinding", 143, "interrupted")],
)  # fmt: skip
def test_a_fault_after_registration_leaves_the_version_tagged_failed_without_alias(
    synthetic_project, tmp_path, fault, code, label
):
    """A fault injected into the real CLI (sitecustomize) between registration and verdict."""
    uri = fresh_store(tmp_path / "store")
    done = run_cli(
        "train", "--env", "dev", "--problem", BINARY, cwd=synthetic_project, tracking_uri=uri,
        env={**injected(FAULT_IN_THE_GATE, tmp_path, synthetic_project), "FAULT": fault},
    )  # fmt: skip
    message = clean_failure(done, code, label)
    client = MlflowClient(uri)
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    assert version.tags["validation_status"] == "failed"
    reason = "interrupted (SIGTERM)" if "SIGTERM" in fault else "RuntimeError: the gate broke"
    assert version.tags["validation_reasons"] == f"training did not finish: {reason}"
    assert client.get_registered_model(MODEL).aliases == {}
    run = client.get_run(version.run_id)
    assert run.info.status == ("KILLED" if "SIGTERM" in fault else "FAILED")
    if fault == "error":
        assert f"version {version.version} of {MODEL} is tagged validation_status=failed" in message


# --- interruption ------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_ends_the_run_killed_and_registers_nothing(synthetic_project, tmp_path, stop):
    number = getattr(signal, stop)
    uri = fresh_store(tmp_path / "store")
    client = MlflowClient(uri)
    environ = {**os.environ, "PYTHONPATH": str(synthetic_project), "MLFLOW_TRACKING_URI": uri}
    process = subprocess.Popen(
        [sys.executable, "-m", "ml_project", "train", "--env", "dev", "--problem", BINARY],
        cwd=synthetic_project,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            running = client.search_runs(
                [e.experiment_id for e in client.search_experiments()],
                filter_string="attributes.status = 'RUNNING'",
            )
            if running:
                break
            time.sleep(0.2)
        assert running, "the training never started its run"
        assert running[0].data.tags["ml_project.pid"] == str(process.pid)
        process.send_signal(number)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert stop in clean_failure(done, 128 + number, "interrupted")
    run = client.get_run(running[0].info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["ml_project.failure"] == f"training did not finish: interrupted ({stop})"
    for version in client.search_model_versions(f"name='{MODEL}'"):  # if it got that far
        assert version.tags["validation_status"] == "failed"
    for model in registered_models(uri):
        assert model.aliases == {}


def finished_pid() -> int:
    """The id of a process that has ended (what a run killed by SIGKILL records)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_a_version_left_by_a_killed_training_is_named_by_show_and_settled_by_the_next(
    synthetic_project, tmp_path
):
    """What `kill -9` during the gate leaves: a RUNNING run whose process is gone, a version
    without a verdict, and `challenger` on it. `show` names it; the next training settles it."""
    uri = fresh_store(tmp_path / "store")
    client = MlflowClient(uri)
    experiment = tracking.ensure_experiment(client, MODEL)  # artifacts beside the store
    run = client.create_run(
        experiment,
        tags={"ml_project.host": socket.gethostname(), "ml_project.pid": str(finished_pid())},
    )
    client.create_registered_model(MODEL)
    version = client.create_model_version(
        MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
        tags={"run_id": run.info.run_id},
    )  # fmt: skip
    client.set_registered_model_alias(MODEL, "challenger", version.version)
    # and a run killed before it registered anything (no version leads to it)
    lone = client.create_run(
        experiment,
        tags={"ml_project.host": socket.gethostname(), "ml_project.pid": str(finished_pid())},
    )
    before = store_digest(uri)

    shown = run_cli("show", "--env", "dev", "--problem", BINARY, "--json",
                    cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-3000:]
    (listed,) = last_json(shown.stdout)["versions"]
    assert listed["validation_status"] == "orphaned"
    assert f"its run {run.info.run_id} is RUNNING but its process" in listed["validation_reasons"]
    text = run_cli("show", "--env", "dev", "--problem", BINARY,
                   cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert "version 1 has no verdict and never will" in text.stdout
    assert store_digest(uri) == before  # show only reads

    done = run_cli("train", "--env", "dev", "--problem", BINARY, "--json",
                   cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = last_json(done.stdout)
    assert result["model_version"] == "2" and result["gate"]["status"] == "passed"
    assert result["settled_versions"][0].startswith("version 1: its run")
    assert "settled    version 1" in done.stdout
    settled = client.get_model_version(MODEL, "1")
    assert settled.tags["validation_status"] == "failed"
    assert settled.tags["validation_reasons"].startswith("no verdict: its run")
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert client.get_registered_model(MODEL).aliases == {"champion": 2}
    assert client.get_run(lone.info.run_id).info.status == "KILLED"
    assert f"run {lone.info.run_id}: RUNNING, but its process" in result["settled_versions"][-1]
    assert client.get_run(lone.info.run_id).data.tags["ml_project.settled"].startswith("ended")


STORE_GOES_READ_ONLY = """
import os, subprocess
from ml_project import promotion

original = promotion.gate_version

def gate_version(*args, **kwargs):  # the version is registered: the store's disk goes read-only
    database = os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    subprocess.run(["chattr", "+i", database, os.path.dirname(database)], check=True)
    return original(*args, **kwargs)

promotion.gate_version = gate_version
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chattr") is None,
    reason="needs root and chattr to make the store read-only under a running process",
)
def test_a_store_that_goes_read_only_mid_run_is_reported_then_named_by_show(
    synthetic_project, tmp_path
):
    """Registered, then the store refuses every write (its disk remounted read-only, say): one
    paragraph that says what could not be recorded, no traceback; `show` names the version."""
    uri = fresh_store(tmp_path / "store")
    database = Path(uri.removeprefix("sqlite:///"))
    try:
        done = train_with_fault(
            STORE_GOES_READ_ONLY, uri=uri, project=synthetic_project, tmp_path=tmp_path
        )
    finally:
        subprocess.run(["chattr", "-i", str(database), str(database.parent)], check=True)
    output = done.stdout + done.stderr
    assert done.returncode == 9, output[-3000:]
    assert "Traceback" not in output
    message = output[output.index("ml-project: tracking store error: ") :]
    assert message.count("\n") == 1, message  # one paragraph
    assert "had started: The store could not record the failure" in message
    assert "ml-project show --env dev" in message
    client = MlflowClient(uri)
    (version,) = client.search_model_versions(f"name='{MODEL}'")
    assert version.tags.get("validation_status") not in ("passed", "failed")  # never judged
    assert "champion" not in client.get_registered_model(MODEL).aliases
    shown = run_cli("show", "--env", "dev", "--problem", BINARY, "--json",
                    cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    (listed,) = last_json(shown.stdout)["versions"]
    assert listed["validation_status"] == "orphaned", listed


def test_an_interruption_after_registration_tags_the_version_and_clears_challenger(
    synthetic_project, tmp_path, monkeypatch
):
    """`abandon`, which the training calls on any exception after its run started, on a real
    store holding a registered version under evaluation."""
    import mlflow

    from ml_project import run_life, tracking
    from ml_project.errors import Interrupted
    from ml_project.settings import load_settings

    uri = fresh_store(tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    settings = load_settings("dev", problem=BINARY, root=synthetic_project)
    run = mlflow.start_run(experiment_id=tracking.ensure_experiment(client, "x"))
    client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(settings.model_name, "challenger", version.version)
    assert run_life.abandon(
        client, settings, "1", run.info.run_id, Interrupted("SIGTERM", 15), commit="abc"
    )
    tags = client.get_model_version(settings.model_name, "1").tags
    assert tags == {
        "validation_status": "failed",
        "validation_reasons": "training did not finish: interrupted (SIGTERM)",
    }
    assert client.get_registered_model(settings.model_name).aliases == {}
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert mlflow.active_run() is None


def test_a_store_that_dies_during_the_cleanup_is_reported_not_claimed(
    synthetic_project, tmp_path, monkeypatch
):
    """`abandon` whose registry no longer answers: it says so (the training's exit-10 message
    then points at `show` and the next training, not at a FAILED run that may not be)."""
    import mlflow

    from ml_project import run_life, tracking
    from ml_project.settings import load_settings

    uri = fresh_store(tmp_path / "store")
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the registry is gone
    settings = load_settings("dev", problem=BINARY, root=synthetic_project)
    run = mlflow.start_run(experiment_id=tracking.ensure_experiment(MlflowClient(uri), "x"))
    recorded = run_life.abandon(
        MlflowClient(dead), settings, "1", run.info.run_id, RuntimeError("boom"), commit="abc"
    )
    assert recorded is False
    assert MlflowClient(uri).get_run(run.info.run_id).info.status == "FAILED"
    message = run_life.left_behind(settings, "1", recorded=False)
    assert "could not record the failure" in message and "ml-project show --env dev" in message


# --- secrets -----------------------------------------------------------------------------------


def test_credentials_in_the_store_uri_are_never_printed_or_written(
    synthetic_project, tracking_server, tmp_path
):
    uri = tracking_server.url.replace("http://", f"http://ci-user:{SECRET}@")
    shown_uri = tracking_server.url.replace("http://", "http://***@")
    trained = run_cli("train", "--env", "dev", "--problem", BINARY, "--json",
                      cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert last_json(trained.stdout)["tracking_uri"] == shown_uri
    assert f"store      {shown_uri}" in trained.stdout
    output = tmp_path / "staging.out"
    output.write_text(trained.stdout)
    summary = run_cli("summary", "--input", str(output), cwd=synthetic_project, tracking_uri=uri)
    shown = run_cli("show", "--env", "dev", "--problem", BINARY,
                    cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    shown_json = run_cli("show", "--env", "dev", "--problem", BINARY, "--json",
                         cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert last_json(shown_json.stdout)["tracking_uri"] == shown_uri
    batch, scored, report = tmp_path / "b.parquet", tmp_path / "s.parquet", tmp_path / "m.md"
    scoring = [
        ["extract-batch", "--rows", "600", "--output", str(batch)],
        ["predict", "--input", str(batch), "--output", str(scored), "--json"],
        ["monitor", "--input", str(batch), "--labels", "--json", "--summary", str(report)],
        ["reproduce", "--env", "dev", "--version", "1", "--json"],
    ]
    scoring_runs = []
    for arguments in scoring:
        env = [] if "--env" in arguments else ["--env", "dev"]
        scoring_runs.append(run_cli(*arguments, *env, "--problem", BINARY,
                                    cwd=synthetic_project, tracking_uri=uri))  # fmt: skip
    monitored = scoring_runs[2]
    drifted = last_json(monitored.stdout)["status"] == "drift"  # the small batch may drift
    assert monitored.returncode == (7 if drifted else 0), monitored.stderr[-3000:]
    for done in (trained, summary, shown, shown_json, *scoring_runs):
        assert done.returncode == 0 or done is monitored, done.stderr[-3000:]
        assert SECRET not in done.stdout + done.stderr
    assert SECRET not in report.read_text()
    client = MlflowClient(tracking_server.url)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) >= 3  # the training, the monitoring, the reproduction
    recorded = [value for run in runs for value in (*run.data.tags.values(),
                                                     *run.data.params.values())]  # fmt: skip
    recorded += client.get_model_version(MODEL, "1").tags.values()
    assert not [value for value in recorded if SECRET in value]
    for run in runs:  # the files each run logged: reports, summaries, configs
        folder = Path(mlflow_artifacts(run.info.run_id, tracking_server.url, tmp_path / "a"))
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".md", ".txt", ".yaml", ".html"):
                assert SECRET not in path.read_text(errors="replace"), path


def mlflow_artifacts(run_id: str, uri: str, destination: Path) -> str:
    import mlflow.artifacts

    return mlflow.artifacts.download_artifacts(
        run_id=run_id, tracking_uri=uri, dst_path=str(destination / run_id)
    )


# --- paths and environment -------------------------------------------------------------------

PATH_CASES = {  # name: (arguments, exit code, label, what the message says)
    "predict into a missing folder": (
        ["predict", "--input", "{batch}", "--output", "{tmp}/missing/scored.parquet"],
        2, "configuration error", "the folder {tmp}/missing does not exist",
    ),
    "predict onto a folder": (
        ["predict", "--input", "{batch}", "--output", "{tmp}/folder.parquet"],
        2, "configuration error", "--output {tmp}/folder.parquet is a folder",
    ),
    "extract-batch into a missing folder": (
        ["extract-batch", "--output", "{tmp}/missing/batch.parquet"],
        2, "configuration error", "the folder {tmp}/missing does not exist",
    ),
    "extract-batch onto a folder": (
        ["extract-batch", "--output", "{tmp}/folder.parquet"],
        2, "configuration error", "--output {tmp}/folder.parquet is a folder",
    ),
    "extract-batch keeping no record": (
        ["extract-batch", "--query", "x1 > 1000", "--output", "{tmp}/empty.parquet"],
        2, "configuration error", "--query 'x1 > 1000' keeps no record: nothing to write",
    ),
    "monitor --summary into a missing folder": (
        ["monitor", "--input", "{batch}", "--summary", "{tmp}/missing/summary.md"],
        2, "configuration error", "--summary {tmp}/missing/summary.md: the folder",
    ),
    "predict from a symbolic link loop": (
        ["predict", "--input", "{tmp}/loop.csv", "--output", "{tmp}/scored.parquet"],
        3, "data error", "a symbolic link that leads to no file (a loop",
    ),
    "train from a symbolic link loop": (
        ["train", "--table", "synthetic_binary={tmp}/loop.csv"],
        3, "data error", "--table synthetic_binary={tmp}/loop.csv: a symbolic link loop",
    ),
    "predict onto a pipe": (
        ["predict", "--input", "{batch}", "--output", "{tmp}/pipe.parquet"],
        2, "configuration error", "--output {tmp}/pipe.parquet is not a regular file",
    ),
    "extract-batch onto a pipe": (
        ["extract-batch", "--output", "{tmp}/pipe.parquet"],
        2, "configuration error", "--output {tmp}/pipe.parquet is not a regular file",
    ),
    "spark onto a folder of other files": (
        ["predict", "--engine", "spark", "--input", "{batch}", "--output", "{tmp}/data"],
        2, "configuration error", "--output {tmp}/data is a folder holding files that are not "
                                  "a Spark Parquet output (keep.csv)",
    ),
    "spark without Java": (
        ["predict", "--engine", "spark", "--input", "{batch}", "--output", "{tmp}/out.parquet"],
        11, "environment error", "JAVA_HOME=/nonexistent holds no bin/java",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_paths_and_environment_fail_in_one_paragraph_before_any_work(
    synthetic_project, scoring_batches, tmp_path, tmp_path_factory, case
):
    arguments, code, label, expected = PATH_CASES[case]
    batch = scoring_batches["binary"]
    (tmp_path / "folder.parquet").mkdir()
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    os.mkfifo(tmp_path / "pipe.parquet")  # a device-like output: never replaced by a file
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.csv").write_text("a user's file\n")
    before = sorted(path.name for path in tmp_path.iterdir())
    # a copy: other workers' tests log monitoring runs into the shared store meanwhile
    uri = copy_store(batch["uri"], tmp_path_factory.mktemp("store"))
    runs_before = len(MlflowClient(uri).search_runs(
        [e.experiment_id for e in MlflowClient(uri).search_experiments()]
    ))  # fmt: skip
    fill = {"batch": str(batch["batch"]), "tmp": str(tmp_path)}
    done = run_cli(
        *[argument.format(**fill) for argument in arguments],
        "--env", "dev", "--problem", BINARY,
        cwd=synthetic_project, tracking_uri=uri, env={"JAVA_HOME": "/nonexistent"},
    )  # fmt: skip
    assert expected.format(**fill) in clean_failure(done, code, label)
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # nothing written
    assert not list((tmp_path / "folder.parquet").iterdir())
    assert (tmp_path / "pipe.parquet").is_fifo()
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["keep.csv"]
    runs_after = len(MlflowClient(uri).search_runs(
        [e.experiment_id for e in MlflowClient(uri).search_experiments()]
    ))  # fmt: skip
    assert runs_after == runs_before  # no monitoring or training run logged


def test_spark_without_pyspark_fails_in_one_paragraph_before_any_work(
    synthetic_project, scoring_batches, tmp_path
):
    """An environment without the [spark] extra: sitecustomize hides pyspark from the CLI."""
    batch = scoring_batches["binary"]
    done = run_cli(
        "predict", "--engine", "spark", "--input", str(batch["batch"]),
        "--output", str(tmp_path / "out.parquet"), "--env", "dev", "--problem", BINARY,
        cwd=synthetic_project, tracking_uri=batch["uri"],
        env=injected("import sys\nsys.modules['pyspark'] = None\n", tmp_path, synthetic_project),
    )  # fmt: skip
    message = clean_failure(done, 11, "environment error")
    assert "--engine spark needs pyspark, which is not installed" in message
    assert "pip install -e '.[spark]'" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["inject"]


FULL_DISK_CASES = {  # name: (arguments, the output that must not appear, bytes a file may hold)
    "extract-batch": (["extract-batch", "--output", "{tmp}/batch.csv"], "batch.csv", 2048),
    "predict": (
        ["predict", "--input", "{batch}", "--output", "{tmp}/scored.csv"],
        "scored.csv",
        2048,
    ),
    "summary": (
        ["summary", "--input", "{result}", "--output", "{tmp}/summary.md"],
        "summary.md",
        200,
    ),
}


@pytest.mark.parametrize("case", list(FULL_DISK_CASES))
def test_a_disk_that_fills_while_writing_leaves_no_partial_output(
    synthetic_project, scoring_batches, tmp_path, case
):
    """The kernel refuses every write past a few bytes of a file (RLIMIT_FSIZE: EFBIG, as a
    full disk refuses with ENOSPC): one paragraph, exit 11, and no file, partial or complete."""
    import resource

    arguments, output, limit = FULL_DISK_CASES[case]
    batch = scoring_batches["binary"]
    result = tmp_path / "train.out"
    result.write_text(json.dumps(batch["result"]) + "\n")
    fill = {"batch": str(batch["batch"]), "tmp": str(tmp_path), "result": str(result)}
    arguments = [argument.format(**fill) for argument in arguments]
    if case != "summary":
        arguments += ["--env", "dev", "--problem", BINARY]
    before = sorted(path.name for path in tmp_path.iterdir())

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    environ = {**os.environ, "PYTHONPATH": str(synthetic_project),
               "MLFLOW_TRACKING_URI": batch["uri"], "MLFLOW_DISABLE_TELEMETRY": "true"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "ml_project", *arguments], cwd=synthetic_project, env=environ,
        capture_output=True, text=True, timeout=600, preexec_fn=small_files, check=False,
    )  # fmt: skip
    message = clean_failure(done, 11, "environment error")
    assert "cannot be written (File too large" in message and output in message
    assert sorted(path.name for path in tmp_path.iterdir()) == before


@pytest.mark.parametrize("content", [b"not json at all\n", b"PAR1\x80\x81binary"])
def test_summary_of_a_file_that_is_not_a_training_output(synthetic_project, tmp_path, content):
    source = tmp_path / "output.txt"
    source.write_bytes(content)
    done = run_cli(
        "summary", "--input", str(source), "--output", str(tmp_path / "summary.md"),
        cwd=synthetic_project, tracking_uri=f"sqlite:///{tmp_path / 'unused.db'}",
    )  # fmt: skip
    message = clean_failure(done, 2, "configuration error")
    assert str(source) in message
    assert not (tmp_path / "summary.md").exists()


# --- model loading trust -----------------------------------------------------------------------


def write_untrusted_models(uri: str) -> None:
    """In a fresh process: two versions of `planted` that training would never write. Version
    1 is skops whose MLmodel asks to trust `builtins.print` (a function in the file); version
    2 is a cloudpickle file."""
    script = f"""
import builtins, mlflow, mlflow.sklearn
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
mlflow.set_tracking_uri({uri!r})
model = make_pipeline(FunctionTransformer(func=builtins.print))
mlflow.set_experiment("planted")  # not the default one: its artifacts are in the test's ./mlruns
with mlflow.start_run(tags={{"ml_project.task": "binary"}}):
    mlflow.sklearn.log_model(model, name="m", registered_model_name="planted",
                             serialization_format="skops",
                             skops_trusted_types=["builtins.print"])
    mlflow.sklearn.log_model(model, name="p", registered_model_name="planted",
                             serialization_format="cloudpickle")
"""
    # from the store's folder: the default experiment keeps its artifacts in ./mlruns
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, env={**os.environ, "MLFLOW_TRACKING_URI": uri},
                          cwd=Path(uri.removeprefix("sqlite:///")).parent)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> str:
    """A store holding write_untrusted_models' two versions, shared by the cases that only try
    to load them (each refusal leaves the versions as they are)."""
    uri = fresh_store(tmp_path_factory.mktemp("planted") / "store")
    write_untrusted_models(uri)
    return uri


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1", "holds types the project does not trust: builtins.print"),
        ("2", "is serialized as cloudpickle: ml-project loads skops files only"),
    ],
)
def test_a_model_is_loaded_with_the_projects_allow_list_not_the_artifacts(
    synthetic_project, planted, tmp_path, version, expected
):
    uri = planted
    batch = tmp_path / "batch.parquet"
    make_table("binary", rows=50).to_parquet(batch, index=False)
    output = tmp_path / "scored.parquet"
    done = run_cli(
        "predict", "--env", "dev", "--problem", BINARY, "--model-uri", f"models:/planted/{version}",
        "--input", str(batch), "--output", str(output),
        cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    assert expected in clean_failure(done, 8, "registry error")
    assert not output.exists()
    for command in (  # Spark's executors and monitor load as predict does
        ["predict", "--engine", "spark", "--input", str(batch), "--output", str(output)],
        ["monitor", "--input", str(batch)],
    ):
        done = run_cli(
            *command, "--env", "dev", "--problem", BINARY,
            "--model-uri", f"models:/planted/{version}",
            cwd=synthetic_project, tracking_uri=uri,
        )  # fmt: skip
        assert expected in clean_failure(done, 8, "registry error"), command
        assert not output.exists()
    # the server loads as predict does, and refuses before it listens
    port = free_port()
    done = run_cli(
        "serve", "--env", "dev", "--problem", BINARY, "--model-uri", f"models:/planted/{version}",
        "--port", str(port), cwd=synthetic_project, tracking_uri=uri, timeout=120,
    )  # fmt: skip
    assert expected in clean_failure(done, 8, "registry error")


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("name=team/model", "name (set in the command line (--set)): String should match"),
        ("gate.floors.roc_auc=inf", "gate.floors.roc_auc (set in the command line (--set)): "
                                    "Input should be a finite number"),
        ("split.test_fraction=.nan", "split.test_fraction (set in the command line (--set))"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_before_any_work_and_blames_the_command_line(
    synthetic_project, tmp_path, override, expected
):
    """A model name MLflow would refuse at registration is refused when the settings load."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    done = run_cli("train", "--env", "dev", "--problem", BINARY, "--set", override,
                   cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert expected in clean_failure(done, 2, "configuration error")
    assert not (tmp_path / "store").exists()  # the store was not even opened


def test_a_challenger_left_on_a_judged_version_by_a_stopped_run_is_cleared(tmp_path):
    """Killed between the verdict and letting go of `challenger`: the next training's
    `settle_orphans` clears the alias and keeps the verdict; a live run's alias is left."""
    from ml_project import recovery

    uri = fresh_store(tmp_path / "store")
    client = MlflowClient(uri)
    experiment = tracking.ensure_experiment(client, MODEL)  # artifacts beside the store
    stopped = client.create_run(experiment)
    client.set_terminated(stopped.info.run_id, status="KILLED")
    this_process = {"ml_project.host": socket.gethostname(), "ml_project.pid": str(os.getpid())}
    live = client.create_run(experiment, tags=this_process)
    client.create_registered_model(MODEL)
    for run in (stopped, live):
        client.create_model_version(
            MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
            tags={"run_id": run.info.run_id, "validation_status": "passed"},
        )  # fmt: skip
    client.set_registered_model_alias(MODEL, "challenger", "2")
    assert recovery.settle_orphans(client, MODEL) == []
    assert client.get_registered_model(MODEL).aliases == {"challenger": 2}
    client.set_registered_model_alias(MODEL, "challenger", "1")
    (settled,) = recovery.settle_orphans(client, MODEL)
    assert settled.startswith("version 1: challenger cleared")
    assert client.get_registered_model(MODEL).aliases == {}
    assert client.get_model_version(MODEL, "1").tags["validation_status"] == "passed"
