"""The MLflow edge: where runs go, and how models and their lineage enter the registry.

Default store: `sqlite:///<project root>/mlflow.db` with artifacts in `<project root>/mlartifacts`.
`MLFLOW_TRACKING_URI` overrides it (a tracking server, or another sqlite file whose artifacts
then go next to it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

from ml_project.errors import StoreError
from ml_project.vocabulary import (
    HOST,
    PID,
    VERDICT_EVALUATED,
    VERDICT_KEY,
    VERDICT_REUSED_FROM,
    suite_tag,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import PandasDataset
    from mlflow.types import Schema

QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "GIT_PYTHON_REFRESH": "quiet",
    "GX_ANALYTICS_ENABLED": "false",
    # Bounded: a tracking server that does not answer fails a command in about a minute, not
    # after MLflow's default ~250 s of retries (7 retries, backoff factor 2, 120 s timeout).
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # MLflow's own loaders take skops' allow-list from the artifact itself; ml-project loads
    # models through loading.py with the project's list, and MLflow's loaders stay off.
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false",
}
# The fail-fast probe a command makes before reading any data: one attempt, a short timeout.
PROBE_ENVIRONMENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")  # user:password@ (or a token) in a URI
PYSPARK_PANDAS_WARNING = "PySpark does not yet fully support pandas"
T = TypeVar("T")


def run_name(*parts: str) -> str:
    """A run's name: `parts` and the UTC time to the second, joined by '-', so that repeated
    runs of one commit or version are told apart in the UI."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return "-".join([*(part for part in parts if part), stamp])


def quiet_environment() -> None:
    """No telemetry, no progress bars, no INFO chatter (users may still override each)."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if CREDENTIALS.search(os.environ.get("MLFLOW_TRACKING_URI", "")):
        # MLflow prints "View run at <the URI>" after each run on a server, password included.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("mlflow", "alembic", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow logs each failed store call with its traceback before raising it; the command
    # reports the failure itself, in one paragraph.
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # great-expectations imports pyspark when the [spark] extra is installed; pyspark then
    # warns about pandas 3 on every command, though the pandas path never touches Spark.
    warnings.filterwarnings("ignore", message=PYSPARK_PANDAS_WARNING, category=FutureWarning)


def tracking_uri(root: Path) -> str:
    """$MLFLOW_TRACKING_URI, else the project's embedded sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def redact(text: str | None) -> str:
    """`text` (a URI, or a message holding URIs) with every user and password replaced by `***`
    (http://u:p@host -> http://***@host): what every printed or written store address goes
    through."""
    return CREDENTIALS.sub(r"\1***@", text or "")


def local_artifact_root(uri: str) -> str | None:
    """For a sqlite store, the `mlartifacts` folder beside the database; None for a server."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite":
        return None
    database = Path(unquote(parsed.path))
    return (database.parent / "mlartifacts").resolve().as_uri()


def connect(root: Path, *, write: bool = True) -> MlflowClient:
    """Point MLflow at the store and return an MlflowClient for it (StoreError if the store
    cannot be reached or, for a writer, not written).

    A reader (`write=False`) takes no lock file, so it works on a read-only store.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    if not write:
        database = sqlite_path(uri)
        if database is not None and not database.is_file():
            raise StoreError(
                f"The tracking store {redact(uri)} does not exist: nothing was trained with it "
                "yet (set MLFLOW_TRACKING_URI to the store you meant)."
            )
    else:
        check_writable(uri)
    # MLflow 3.17 creates and migrates a new sqlite store without a lock: two processes opening
    # the same fresh file at once crash ("duplicate column name"). Let one create it first.
    with sqlite_lock(uri, "init") if write else contextlib.nullcontext(), probing():
        try:  # a sqlite store is opened (created, migrated) with the client
            client = MlflowClient(tracking_uri=uri, registry_uri=registry_uri)
            client.search_registered_models(max_results=1)
        except Exception as exc:  # any failure here is the store's
            raise StoreError(store_failure(uri, exc)) from exc
    return client


def migration_stopped(uri: str) -> str | None:
    """For a sqlite store that failed to open because its schema migration stopped part-way (a
    full disk or a kill while MLflow created or upgraded it: behind MLflow's revision, with
    tables missing or alembic's leftovers, which MLflow then fails to create again), what
    happened and the fix, in one paragraph; else None (an older store with every table gets
    MLflow's own advice, `mlflow db upgrade`)."""
    import sqlite3

    database = sqlite_path(uri)
    if database is None or not database.is_file():
        return None
    try:
        from mlflow.store.db.base_sql_model import Base
        from mlflow.store.db.utils import _get_latest_schema_revision

        with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" not in tables:
                return None
            (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
            runs = db.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        head = str(_get_latest_schema_revision())  # type: ignore[no-untyped-call]
    except (ImportError, sqlite3.Error, ValueError):
        return None
    leftovers = sorted(name for name in tables if name.startswith("_alembic_tmp_"))
    if revision == head or not (leftovers or set(Base.metadata.tables) - tables):
        return None
    what = f"; leftover tables {', '.join(leftovers)}" if leftovers else ""
    fix = (
        f"It holds no runs: delete {database} and run again (a new store is created)."
        if not runs
        else f"It holds {runs} runs: restore {database} from the copy taken before the upgrade, "
        f"then run `mlflow db upgrade sqlite:///{database}` again with free disk space."
    )
    return (
        f"The tracking store {database} stopped part-way through a schema migration (at revision "
        f"{revision or 'none'}, MLflow's is {head}{what}): a full disk or a kill while MLflow "
        f"created or upgraded it, and MLflow cannot open it as it is. {fix} Nothing was read, "
        "registered or moved."
    )


def process_tags() -> dict[str, str]:
    """Who runs a run (host and pid): how a later command tells a run killed without a word
    (kill -9, a lost machine) from one still going."""
    return {HOST: socket.gethostname(), PID: str(os.getpid())}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite store URI, None for anything else."""
    parsed = urlparse(uri)
    if parsed.scheme != "sqlite" or not parsed.path:
        return None
    path = unquote(parsed.path)
    return Path("/" + path.lstrip("/") if path.startswith("/") else path)


def check_writable(uri: str) -> None:
    """Before any data is read: a sqlite store's folder exists and the database takes a write
    lock within seconds (not read-only, not held by another writer). A server is probed by
    `connect`."""
    import sqlite3

    database = sqlite_path(uri)
    if database is None:
        return
    where = f"The tracking store {redact(uri)}"
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{where} cannot be created ({exc}).") from exc
    artifacts = database.parent / "mlartifacts"
    if artifacts.exists() and not artifacts.is_dir():
        raise StoreError(f"{where} keeps its artifacts in {artifacts}, which is not a folder.")
    if not database.exists():
        if not os.access(database.parent, os.W_OK):
            raise StoreError(f"{where} cannot be created: its folder is not writable.")
        return
    unwritable = [str(path) for path in (database, database.parent) if not os.access(path, os.W_OK)]
    if unwritable:  # sqlite would open it read-only and fail at the first write
        raise StoreError(
            f"{where} cannot be written: {' and '.join(unwritable)} not writable (read-only "
            "permissions, an immutable file or a read-only mount). Read-only commands (show, "
            "predict, extract-batch) work on it; nothing was read or registered."
        )
    try:
        connection = sqlite3.connect(database, timeout=10)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StoreError(
            f"{where} cannot be written ({exc}): a read-only file or folder, a full disk, or "
            "another process holding its write lock. Nothing was read or registered."
        ) from exc


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Within the block, logger `name` shows errors only."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def probing() -> Iterator[None]:
    """MLflow's HTTP calls inside make one short attempt (the fail-fast check of a store)."""
    saved = {key: os.environ.get(key) for key in PROBE_ENVIRONMENT}
    os.environ.update(PROBE_ENVIRONMENT)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# What SQLAlchemy appends to a database error's text: the statement, its parameters (a run's
# tags and params: maybe private) and a link. Never shown; the run's traceback keeps them.
SQL_DETAIL = re.compile(r"\s*(\[SQL: .*|\(Background on this error at: [^)]*\))", re.DOTALL)


def plain_error(exc: BaseException) -> str:
    """`exc`'s message on one line, without credentials, and without the SQL statement, its
    parameters and the link SQLAlchemy appends (`sqlite3.OperationalError: database or disk is
    full` rather than a page of INSERTs)."""
    return redact(" ".join(SQL_DETAIL.sub("", str(exc)).split()))


def store_failure(uri: str, exc: BaseException) -> str:
    """One paragraph for a store that failed, without its credentials."""
    stopped = migration_stopped(uri)
    if stopped:
        return stopped
    detail = plain_error(exc)
    if len(detail) > 300:
        detail = detail[:300] + "..."
    return (
        f"The tracking store {redact(uri)} did not answer as expected ({type(exc).__name__}: "
        f"{detail}). Check that it is running and reachable, and MLFLOW_TRACKING_URI; nothing "
        "was read, registered or moved."
    )


@contextmanager
def sqlite_lock(uri: str, purpose: str) -> Iterator[None]:
    """Exclusive across processes for a local sqlite store (a file lock beside it); else a no-op."""
    parsed = urlparse(uri)
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None  # type: ignore[assignment]
    if parsed.scheme != "sqlite" or not parsed.path or fcntl is None:
        yield
        return
    path = Path(unquote(parsed.path) + f".{purpose}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as exc:
        raise StoreError(
            f"The tracking store {redact(uri)} cannot be written: its lock file {path} cannot "
            f"be created ({exc.strerror})."
        ) from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created (artifacts beside a sqlite store) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = local_artifact_root(client.tracking_uri)
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # created meanwhile by a concurrent run
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def verdict_lookup(
    client: MlflowClient, experiment: str
) -> Callable[[str, str], tuple[str, int] | None]:
    """`(table, key) -> (run id, expectations evaluated) | None`: the newest run of `experiment`
    tagged with that table's passed-verdict key (validation.run_tags), and the run that first
    checked it. A lookup that fails costs a validation, never the training."""

    experiment_ids: list[str] = []  # looked up once, on the first call

    def lookup(table: str, key: str) -> tuple[str, int] | None:
        try:
            if not experiment_ids:
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    return None
                experiment_ids.append(found.experiment_id)
            runs = client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{suite_tag(table, VERDICT_KEY)}` = '{key}'",
                max_results=1,
                order_by=["attributes.start_time DESC"],
            )
            if not runs:
                return None
            tags = runs[0].data.tags
            source = tags.get(suite_tag(table, VERDICT_REUSED_FROM)) or runs[0].info.run_id
            return source, int(tags[suite_tag(table, VERDICT_EVALUATED)])
        except Exception:  # noqa: BLE001 - the suite then runs: same verdict, more time
            return None

    return lookup


def flatten(
    mapping: Mapping[str, Any], leaf: Callable[[Any], str] | None = None, prefix: str = ""
) -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': leaf(1)}; by default lists become comma-separated text and
    None the empty text (MLflow params)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, leaf, f"{name}."))
        else:
            flat[name] = (leaf or _param_text)(value)
    return flat


def _param_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return "" if value is None else str(value)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def sqlite_busy(exc: BaseException) -> bool:
    """Whether `exc` is the store refusing a second writer: sqlite's SQLITE_BUSY or
    SQLITE_LOCKED code on the driver's exception however MLflow and SQLAlchemy wrap it; with no
    sqlite error inside, MLflow's TEMPORARILY_UNAVAILABLE (what a server sends back)."""
    import sqlite3

    from mlflow.exceptions import MlflowException

    chain = list(causes(exc))
    codes = [
        getattr(cause, "sqlite_errorcode", 0) for cause in chain if isinstance(cause, sqlite3.Error)
    ]
    if codes:  # an extended code's low byte is its primary code
        return any((code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) for code in codes)
    return any(
        isinstance(cause, MlflowException) and cause.error_code == "TEMPORARILY_UNAVAILABLE"
        for cause in chain
    )


def store_failed(exc: BaseException) -> bool:
    """Whether `exc` is the tracking store failing (a locked, full or read-only database, a
    server that stopped answering), told by the exception types in its chain and MLflow's
    error code."""
    import sqlite3

    import requests
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    return isinstance(exc, SQLAlchemyError | requests.RequestException) or any(
        isinstance(cause, sqlite3.OperationalError | OperationalError | requests.RequestException)
        or (
            isinstance(cause, MlflowException)
            and (cause.error_code == "TEMPORARILY_UNAVAILABLE" or _http_failure(cause))
        )
        for cause in causes(exc)
    )


def _http_failure(exc: BaseException) -> bool:
    """A server's answer MLflow's REST client refused (a 502 or 504 from a proxy, a body that
    is no JSON): MLflow raises it with the catch-all INTERNAL_ERROR code and no cause, so its
    own message's opening words are all that tell it from any other error."""
    return str(exc).startswith("API request to")


def retry(
    transient: Callable[[BaseException], bool],
    call: Callable[..., T],
    *args: Any,
    attempts: int,
    **kwargs: Any,
) -> T:
    """`call(*args, **kwargs)`, retried with backoff while its error is `transient`; any other
    error, or the same one after `attempts`, is raised."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not transient(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.1 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


def retry_locked(call: Callable[..., T], *args: Any, attempts: int = 8, **kwargs: Any) -> T:
    """`call(*args, **kwargs)`, retried while the sqlite store is locked by another writer (sqlite
    refuses a second writer instead of waiting)."""
    return retry(sqlite_busy, call, *args, attempts=attempts, **kwargs)


def set_version_tags(
    client: MlflowClient, model_name: str, version: str, tags: dict[str, str]
) -> None:
    """Set each of `tags` on the version (retried while the sqlite store is locked); also
    `registry.set_version_tags`."""
    for key, value in tags.items():
        retry_locked(client.set_model_version_tag, model_name, str(version), key, value)


def log_input(dataset: PandasDataset, *, context: str) -> None:
    """mlflow.log_input, again when another process logged the same dataset to the experiment
    between MLflow's check for it and its insert (two trainings at once: the store's unique
    constraint refuses the second insert; the next attempt finds the dataset and links it)."""
    import mlflow

    retry(_unique_violation, mlflow.log_input, dataset, context=context, attempts=3)


def _unique_violation(exc: BaseException) -> bool:
    """A store's unique constraint refused an insert: an IntegrityError of SQLAlchemy (sqlite,
    PostgreSQL, MySQL) under MLflow's exception, or a server's RESOURCE_ALREADY_EXISTS."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import IntegrityError

    return any(
        isinstance(cause, IntegrityError)
        or (isinstance(cause, MlflowException) and cause.error_code == "RESOURCE_ALREADY_EXISTS")
        for cause in causes(exc)
    )


def pandas_dataset(
    frame: pd.DataFrame, *, source: str, name: str, digest: str, targets: str
) -> PandasDataset:
    """An MLflow dataset of `frame` with our digest and a schema read from its dtypes.

    MLflow would infer the schema by visiting every value of each text column in Python
    (~3 s for the prod frames, growing with the data); `dataset_schema` gives the same schema
    from the dtypes and one vectorised null check a column.
    """
    import warnings

    import mlflow.data

    with warnings.catch_warnings():  # the model's signature, not this, says which are doubles
        warnings.filterwarnings("ignore", message="The specified dataset source")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        # from_pandas is bound on mlflow.data at import time (its dataset registry): unseen by mypy
        dataset: PandasDataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            frame, source=source, targets=targets, name=name, digest=digest
        )
        dataset.schema = dataset_schema(frame)  # a cached_property: this value is used instead
    return dataset


def dataset_schema(frame: pd.DataFrame) -> Schema:
    """The schema MLflow infers for `frame`, computed without a pass over every text value:
    types are inferred on one row per column holding a value, `required` on the whole frame."""
    import warnings

    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types import ColSpec, Schema

    present = [column.notna().to_numpy() for _, column in frame.items()]
    first_values = {int(mask.argmax()) for mask in present if mask.any()}  # positions, any index
    sample = frame.iloc[sorted(first_values)] if first_values else frame.head(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        inferred = infer_signature(pd.DataFrame(sample)).inputs
    return Schema(
        [
            ColSpec(spec.type, spec.name, required=not frame[spec.name].hasnans)
            for spec in inferred.inputs
        ]
    )
