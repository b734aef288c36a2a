"""Shared fixtures: temporary MLflow stores, clean git copies of the project, the real CLI."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import __main__
from tests.preforked import needs_fresh_process, preloaded_server, stop_server

ROOT = Path(__file__).resolve().parent.parent
# Set by .ci/run: a test whose system program (Java, PostgreSQL) is missing fails instead of
# skipping, so CI runs every test.
EVERYTHING = "ML_PROJECT_TEST_EVERYTHING"
# The CLI's progress lines (one a stage) are off in every command a test runs, whose stderr it
# reads for the one-paragraph error; a test of the progress lines sets ML_PROJECT_QUIET="".
os.environ["ML_PROJECT_QUIET"] = "1"
# One OpenMP thread per test process and the processes it starts (scikit-learn's default is one
# a core in every process: xdist workers then wait on one another). `make test` sets it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The JVMs the Spark tests start live seconds: C1's quick compiles and the serial collector cost
# them about a third less than the JVM's defaults (tuned for long jobs). spark-submit, which
# pyspark runs to start its JVM, passes SPARK_SUBMIT_OPTS to it; a user's Spark is left alone.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")


def require(what: str, present: bool, install: str) -> None:
    """Skip a test (or, called at import, a whole module) that needs `what` where it is missing,
    with one line saying what to install; under .ci/run ($ML_PROJECT_TEST_EVERYTHING) fail."""
    if present:
        return
    message = f"needs {what}, missing here: {install} (bash .ci/run installs it)"
    if os.environ.get(EVERYTHING):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def java_present() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        return (Path(java_home) / "bin" / "java").is_file()
    return shutil.which("java") is not None


# pytest-xdist workers run with a bare `__main__` (no __file__, no __spec__). With the [spark]
# extra installed, great-expectations imports pyspark.sql.connect, which takes a bare __main__
# for a doctest run and calls sys.exit(0) when grpc is missing: name the worker's main module.
if getattr(__main__, "__spec__", None) is None and not hasattr(__main__, "__file__"):
    __main__.__file__ = "<pytest-xdist worker>"
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(autouse=True)
def _never_touch_the_project_store(monkeypatch, tmp_path):
    """Any test that forgets a store gets a throwaway one, never ./mlflow.db."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'default-store.db'}")


@pytest.fixture(autouse=True)
def _mlflow_globals_restored():
    """A test that calls mlflow.set_tracking_uri (or leaves a run active) in this process must
    not send a later test of the same worker to its store."""
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    before = getattr(tracking, "_tracking_uri", None)
    yield
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    while mlflow.active_run() is not None:
        mlflow.end_run()
    tracking = sys.modules["mlflow.tracking._tracking_service.utils"]
    if tracking._tracking_uri != before:
        tracking._tracking_uri = before


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A fresh embedded MLflow store in a temp dir, exported as MLFLOW_TRACKING_URI."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    """tracking_uri's store already created (`empty_store`): for tests whose subject is not
    the store's creation, exported as MLFLOW_TRACKING_URI."""
    uri = empty_store(tmp_path / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def project_files() -> list[Path]:
    """The project's files as git sees them (tracked and untracked-but-not-ignored)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 0 and listed.stdout.strip():
        return [Path(line) for line in listed.stdout.splitlines() if (ROOT / line).is_file()]
    skip = {".git", ".venv", "__pycache__", "mlartifacts", "mlruns", ".pytest_cache"}
    return [
        path.relative_to(ROOT)
        for path in ROOT.rglob("*")
        if path.is_file()
        and not skip & set(path.relative_to(ROOT).parts)
        and path.name != "mlflow.db"
    ]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_project_copy(destination: Path) -> Path:
    """A clean git repository holding a copy of the project, one commit on branch main."""
    for relative in project_files():
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    git(destination.parent, "init", "-q", "-b", "main", str(destination))
    git(destination, "config", "user.email", "tests@example.invalid")
    git(destination, "config", "user.name", "tests")
    git(destination, "add", "-A")
    git(destination, "commit", "-q", "-m", "project copy for tests")
    return destination


def run_cli(
    *args: str, cwd: Path, tracking_uri: str, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """`python -m ml_project ARGS` in its own process, running the code found in `cwd`: a fork
    of the worker's preloaded server (tests/preforked.py) unless the call needs a fresh one."""
    environ = {
        **os.environ,
        "PYTHONPATH": str(cwd),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **(env or {}),
    }
    environ.pop("ML_PROJECT_ROOT", None)
    server = preloaded_server()
    if not needs_fresh_process(environ, cwd, server.values):
        return server.run(list(args), cwd=cwd, env=environ, timeout=timeout)
    return subprocess.run(
        [sys.executable, "-m", "ml_project", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def imported_by(modules: str, watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` a fresh interpreter has imported after `import <modules>`."""
    code = (
        f"import sys, {modules}; "
        f"print(','.join(sorted(m for m in {watched!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [name for name in done.stdout.strip().split(",") if name]


def last_json(output: str) -> dict:
    """The JSON object a `--json` command prints last."""
    import json

    return json.loads(output.strip().splitlines()[-1])


_EMPTY_STORE: Path | None = None


def empty_store(folder: Path, name: str = "mlflow.db") -> str:
    """The URI of a new, empty sqlite store at `folder`/`name`, its tables already at MLflow's
    schema head: a copy of one MLflow's own migrations built once in this process.

    A store MLflow creates runs ~100 alembic migrations (~1.2 CPU-s) in the first process that
    opens it; the copy skips them and nothing else: MLflow finds every table, checks the schema
    head and creates its Default experiment (with the opening process's artifact root) as it
    does after migrating. For tests whose subject is not a store's creation (those keep a
    plain path, which MLflow creates: test_store_full, test_concurrent_training).
    """
    global _EMPTY_STORE
    if _EMPTY_STORE is None:
        import atexit
        import tempfile

        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables

        built = Path(tempfile.mkdtemp(prefix="ml-project-empty-store-")) / "mlflow.db"
        atexit.register(shutil.rmtree, built.parent, ignore_errors=True)
        engine = sqlalchemy.create_engine(f"sqlite:///{built}")
        _initialize_tables(engine)  # what SqlAlchemyStore runs on a database without tables
        engine.dispose()
        _EMPTY_STORE = built
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.exists():
        raise FileExistsError(f"{target}: a store is already there")
    shutil.copyfile(_EMPTY_STORE, target)
    return f"sqlite:///{target}"


def copy_store(uri: str, folder: Path) -> str:
    """A consistent copy of a sqlite store (its artifacts stay where they are)."""
    import sqlite3

    source = uri.removeprefix("sqlite:///")
    target = folder / "mlflow.db"
    with sqlite3.connect(source) as old, sqlite3.connect(target) as new:
        old.backup(new)
    return f"sqlite:///{target}"


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def built_once(tmp_path_factory, name: str, build: Callable[[Path], dict]) -> dict:
    """`build(folder)` once per test session, shared by every pytest-xdist worker.

    Under xdist each worker runs session fixtures itself; what `build` returns (JSON) and
    writes in `folder` lives in the folder all workers share (the parent of their basetemps),
    and the first worker to need it builds it while the others wait on a lock. A failed build
    leaves nothing, so the next worker tries again (and fails the same way, with its message).
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder, done = shared / name, shared / f"{name}.json"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return json.loads(done.read_text())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        value = build(folder)
        done.write_text(json.dumps(value))
        return value


@pytest.fixture(scope="session")
def project_copy(tmp_path_factory) -> Path:
    """One clean committed copy of the project shared by tests that do not change it (one for
    the session, every xdist worker)."""

    def build(folder: Path) -> dict:
        return {"root": str(make_project_copy(folder / "project"))}

    preloaded_server()  # started here, not inside the first test that times a CLI call
    return Path(built_once(tmp_path_factory, "clean-project", build)["root"])


@pytest.fixture(scope="session")
def synthetic_project(tmp_path_factory) -> Path:
    """A clean committed project copy holding a synthetic problem of each task kind
    (problems/synthetic_<kind>/, data/synthetic_<kind>.csv): what platform tests run on.
    One copy for the whole session (every xdist worker): tests never change it."""
    from tests.synthetic import KINDS, write_problem

    def build(folder: Path) -> dict:
        root = make_project_copy(folder / "project")
        for kind in KINDS:
            write_problem(root, kind)
        commit_all(root, "synthetic problems")
        return {"root": str(root)}

    preloaded_server()  # started here, not inside the first test that times a CLI call
    return Path(built_once(tmp_path_factory, "synthetic-project", build)["root"])


@pytest.fixture(scope="session")
def synthetic_models(synthetic_project, tmp_path_factory) -> dict:
    """One dev training per task kind in a shared store: {kind: {"uri", "result", "problem"}}.

    Tests that only read what a training left (show, predict, monitor, reproduce, serving)
    share these instead of training again: one store for the session, every xdist worker.
    Tests that change the store make their own (or a copy: tests/integration/
    test_reproduce_cli.py's copy_store); only test_monitor_cli.py logs monitoring runs here.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mlflow import MlflowClient

    from tests.synthetic import KINDS

    def build(folder: Path) -> dict:
        uri = empty_store(folder)
        MlflowClient(uri).search_experiments()  # its Default experiment, before three writers

        def train(kind: str) -> dict:
            problem = f"synthetic_{kind}"
            done = run_cli(
                "train", "--env", "dev", "--problem", problem, "--json",
                cwd=synthetic_project, tracking_uri=uri,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return {"uri": uri, "result": last_json(done.stdout), "problem": problem}

        # The three trainings at once (each its own model): the other workers wait on this store.
        with ThreadPoolExecutor(len(KINDS)) as pool:
            return dict(zip(KINDS, pool.map(train, KINDS), strict=True))

    return built_once(tmp_path_factory, "synthetic-store", build)


def pytest_unconfigure(config) -> None:
    """The worker's preloaded server (tests/preforked.py) stops with the worker."""
    stop_server()


# The longest files first (per-file totals in benchmarks/profiles/ci-durations-*.txt, the
# 2026-12-07c whole-suite run's order, setup included): under `--dist loadfile` a worker runs a
# whole file, and a long one started last leaves the other workers idle at the end. The other
# files keep their order.
LONGEST_FIRST = (
    "tests/integration/test_faults_cli.py",
    "tests/integration/test_reproduce_cli.py",
    "tests/integration/test_spark_scoring.py",
    "tests/integration/test_train_cli.py",
    "tests/ci/test_workflow_releases.py",
    "tests/ci/test_workflow_events.py",
    "tests/integration/test_init_cli.py",
    "tests/examples/flights/test_broken_inputs.py",
    "tests/integration/test_data_sources.py",
    "tests/integration/test_monitor_cli.py",
    "tests/integration/test_serving.py",
    "tests/integration/test_safe_retraining.py",
    "tests/integration/test_gate_cli.py",
    "tests/integration/test_tracking_server.py",
    "tests/integration/test_team_server.py",
    "tests/integration/test_time_cli.py",
    "tests/examples/storms/test_storms_cli.py",
    "tests/integration/test_reproduce_artifact.py",
    "tests/integration/test_predict_cli.py",
    "tests/integration/test_mlproject.py",
    "tests/integration/test_serving_switch.py",
    "tests/examples/flights/test_scoring.py",
    "tests/integration/test_settle_cli.py",
    "tests/integration/test_copier.py",
    "tests/integration/test_model_card_ui.py",
    "tests/integration/test_store_full.py",
    "tests/examples/flights/test_flights_cli.py",
    "tests/examples/flights/test_suites.py",
    "tests/integration/test_hybrid_promotion.py",
    "tests/integration/test_gate_health_cli.py",
    "tests/integration/test_serve_refusal.py",
    "tests/integration/test_concurrent_training.py",
    "tests/unit/test_init_tomorrow.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    rank = {path: number for number, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
