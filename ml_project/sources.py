"""Where a table's rows come from, and reading them: a local file or Parquet folder, an
object-store URL (fsspec: `s3://`, `gs://`, ...), or a SQL query against a database.

A table's setting (`data.tables.<name>`) is one string and never holds a secret:

    data/orders.csv                      a file (CSV, zipped CSV, Parquet), as before
    data/events/?columns=id,at,amount    a Parquet dataset folder (hive partitions); only the
                                         listed columns are read (column pruning)
    s3://bucket/events.parquet           an object (or a Parquet folder: s3://bucket/events/);
                                         credentials from the environment (AWS_* variables)
    sql:queries/orders.sql@ORDERS_DB     the query in that file (relative to the project root)
                                         against the SQLAlchemy URL held by $ORDERS_DB
                                         (default $DATABASE_URL); a password may also come
                                         from the driver's own variables (PGPASSWORD)

The digest of a local file is the sha256 of its bytes (as ever); of any other source, the
sha256 of the rows read (data.frame_digest): both are recorded as `data.table.<name>.sha256`.
The object-store and database clients are the optional extra `ml-project[sources]`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from ml_project import data
from ml_project.errors import ConfigError, DataError, SetupError
from ml_project.lineage import without_credentials

logger = logging.getLogger(__name__)

SQL_PREFIX = "sql:"
DEFAULT_URL_VARIABLE = "DATABASE_URL"
CONNECT_TIMEOUT_S = 5  # an unreachable database or bucket fails within seconds
READ_TIMEOUT_S = 60
EXTRA = "install the [sources] extra (`make install`, or `pip install -e '.[sources]'`)"
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "sqlite", "mssql", "oracle")

Kind = Literal["file", "folder", "url", "query"]


@dataclass(frozen=True)
class Source:
    """One table's source: `spec` as the settings write it; `location` the local path, URL or
    query file; `variable` the environment variable naming a query's database."""

    spec: str
    kind: Kind
    location: str
    columns: tuple[str, ...] = ()
    variable: str = ""

    def __str__(self) -> str:
        """The source in words, without a secret: what tags, messages and datasets show."""
        if self.kind == "query":
            return f"{SQL_PREFIX}{self.location}@{self.variable}"
        if self.kind == "url":  # nor its query, which may carry a signature or a token
            return without_credentials(self.location).split("?", 1)[0]
        return self.location

    @property
    def path(self) -> Path:
        """The local file or folder (a file or folder source only)."""
        return Path(self.location)

    @property
    def is_file(self) -> bool:
        """A local file: its digest is its bytes' sha256, its snapshot a copy of them."""
        return self.kind == "file"

    def exists(self) -> bool:
        """Whether a local source is still there (a remote one is only known by reading it)."""
        return self.path.exists() if self.kind in ("file", "folder") else True


def resolve(spec: str, root: Path, *, query_root: Path | None = None) -> Source:
    """A table's setting as a Source: local paths against `root` (data.resolve_table), a query
    file against `query_root` (default `root`)."""
    if spec.startswith(SQL_PREFIX):
        query, _, variable = spec.removeprefix(SQL_PREFIX).partition("@")
        variable = variable or DEFAULT_URL_VARIABLE
        if not query or not _VARIABLE.match(variable):
            raise ConfigError(
                f"{spec}: a SQL source is sql:<query file>@<VARIABLE>, the variable holding "
                "the database URL (e.g. sql:queries/orders.sql@ORDERS_DATABASE_URL)."
            )
        path = Path(query).expanduser()
        where = path if path.is_absolute() else Path(query_root or root) / path
        return Source(spec=spec, kind="query", location=str(where), variable=variable)
    base, columns = _columns_of(spec)
    if _SCHEME.match(base):
        return Source(spec=spec, kind="url", location=base, columns=columns)
    path = data.resolve_table(base, root)
    kind: Kind = "folder" if path.is_dir() or base.endswith("/") else "file"
    return Source(spec=spec, kind=kind, location=str(path), columns=columns)


Location = Path | Source  # a plain local file as its Path (as ever), any other source a Source


def locate(spec: str, root: Path, *, query_root: Path | None = None) -> Location:
    """A table's setting as what reads it: a plain local file's Path, else its Source."""
    source = resolve(spec, root, query_root=query_root)
    return source.path if source.is_file and not source.columns else source


def is_local_file(location: Location) -> bool:
    """A local file: its digest is its bytes' sha256, its snapshot a copy of them."""
    return isinstance(location, Path) or location.is_file


def init_spec(value: str) -> str | None:
    """`init --table NAME=VALUE`'s setting for a source that is no local file (None for a
    local file): a URL or `sql:` setting as it is, a `.sql` file as `sql:<file>@DATABASE_URL`.
    A database URL is refused: the settings never hold it (it may hold a password)."""
    if value.startswith(SQL_PREFIX):
        return value
    if value.lower().endswith(".sql"):
        return f"{SQL_PREFIX}{value}@{DEFAULT_URL_VARIABLE}"
    scheme = urlsplit(value).scheme.lower() if _SCHEME.match(value) else ""
    if not scheme or scheme == "file":
        return None
    if "+" in scheme or scheme in DATABASE_SCHEMES:
        raise ConfigError(
            f"--table ...={hide_password(value)}: the settings never hold a database URL (it "
            "may carry a password). Put the query in a file, the URL in an environment "
            "variable, and name both: --table NAME=sql:queries/NAME.sql@NAME_DATABASE_URL "
            "(docs/data-sources.md)."
        )
    return without_credentials(value)


def _columns_of(spec: str) -> tuple[str, tuple[str, ...]]:
    """`spec` without a `?columns=a,b` suffix, and those columns."""
    base, mark, query = spec.partition("?columns=")
    if not mark:
        return spec, ()
    columns = tuple(name.strip() for name in query.split(",") if name.strip())
    if not columns:
        raise ConfigError(f"{spec}: ?columns= names no column (e.g. ?columns=id,amount).")
    return base, columns


def read(source: Location | str) -> pd.DataFrame:
    """The rows of a source, or a DataError naming it (never its password) within seconds."""
    if not isinstance(source, Source):
        return data.read_table(source)
    if source.kind == "file":
        frame = data.read_table(source.path)
        return frame.loc[:, list(source.columns)] if source.columns else frame
    if source.kind == "query":  # rows in no set order (heap order, parallel scans): one order
        frame = in_content_order(read_query(source))
    elif source.kind == "folder":
        frame = _read_parquet(source, source.location, {})
    else:
        frame = read_object(source)
    if frame.empty:
        raise DataError(f"{source}: the source holds no rows.")
    return frame


def in_content_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows sorted by a hash of their values (stable): the same rows give the same frame,
    digest and model whatever order the database returned them in."""
    order = np.argsort(pd.util.hash_pandas_object(frame, index=False).to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def digest(source: Location | str, frame: pd.DataFrame) -> str:
    """What `data.table.<name>.sha256` records: a local file's bytes, else the rows read."""
    if not isinstance(source, Source):
        return data.file_digest(source)
    return data.file_digest(source.path) if source.is_file else data.frame_digest(frame)


# ---------------------------------------------------------------- object stores (fsspec)


def storage_options(url: str) -> dict[str, Any]:
    """Client options for `url`'s file system: short timeouts for S3 (s3fs/botocore read the
    credentials and AWS_ENDPOINT_URL from the environment)."""
    if urlsplit(url).scheme in ("s3", "s3a"):
        return {
            "config_kwargs": {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
                "retries": {"max_attempts": 2, "mode": "standard"},
            }
        }
    return {}


def read_object(source: Source) -> pd.DataFrame:
    """An object (CSV, zipped CSV, Parquet) or a Parquet folder at an fsspec URL."""
    url = source.location
    options = storage_options(url)
    suffix = urlsplit(url).path.lower()
    with _object_errors(source):
        if suffix.endswith(".parquet") or suffix.endswith(".pq") or suffix.endswith("/"):
            return _read_parquet(source, url, options)
        frame = pd.read_csv(
            url,
            storage_options=options,
            compression="zip" if suffix.endswith(".zip") else "infer",
            usecols=list(source.columns) or None,
        )
        return frame


def _read_parquet(source: Source, where: str, options: dict[str, Any]) -> pd.DataFrame:
    """A Parquet file or (hive-partitioned) folder, only `source.columns` when named."""
    columns = list(source.columns) or None
    try:
        return pd.read_parquet(where, columns=columns, storage_options=options or None)
    except FileNotFoundError as exc:
        raise DataError(f"{source}: no such object or folder ({first_line(exc)}).") from exc
    except (OSError, ValueError) as exc:
        if source.kind == "url":
            raise
        raise DataError(f"{source}: the Parquet data cannot be read ({exc}).") from exc


@contextmanager
def _object_errors(source: Source) -> Iterator[None]:
    """Object-store failures as one DataError naming the URL (no credentials)."""
    try:
        yield
    except (DataError, SetupError):
        raise
    except ImportError as exc:
        raise SetupError(
            f"{source}: reading {urlsplit(source.location).scheme}:// URLs needs its file "
            f"system client ({first_line(exc)}): {EXTRA}."
        ) from exc
    except Exception as exc:  # any client's error, reported in one line without a secret
        if isinstance(exc, FileNotFoundError):
            why = "no such object or bucket"
        elif isinstance(exc, PermissionError):
            why = "access denied: check the credentials in the environment (AWS_* variables)"
        else:
            why = "cannot be read"
        raise DataError(f"{source}: {why} ({first_line(exc)}).") from exc


# ---------------------------------------------------------------- databases (SQLAlchemy)


def database_url(source: Source) -> str:
    """The database URL from the variable the source names, or a DataError saying which."""
    url = os.environ.get(source.variable, "").strip()
    if not url:
        raise DataError(
            f"{source}: the environment variable {source.variable} holding the database URL "
            f"is not set (e.g. export {source.variable}=postgresql+psycopg://user:password@host"
            "/database; in CI, a secret)."
        )
    return url


def hide_password(url: str) -> str:
    """A database URL without its password and query (`?password=`, `odbc_connect=...PWD=`);
    text that is no URL, without a user part or query."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).set(query={}).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL: drop any user:password@ part
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=host, query=""))


def read_query(source: Source) -> pd.DataFrame:
    """The rows of the source's query file against its database, with short timeouts."""
    try:
        query = Path(source.location).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{source}: the query file cannot be read ({exc.strerror}).") from exc
    if not query.strip():
        raise DataError(f"{source}: the query file {source.location} is empty.")
    url = database_url(source)
    where = f"{source} ({hide_password(url)})"
    engine = _engine(url, where)
    try:
        try:
            connection = engine.connect()
        except Exception as exc:  # any driver's error, reported without the secret
            raise DataError(
                f"{where}: cannot connect ({_database_message(exc, url)}); check that the "
                "database is reachable and the user and password are right."
            ) from exc
        with connection:
            try:
                return pd.read_sql_query(_text(query), connection)
            except Exception as exc:  # the query's error, as the database said it
                raise DataError(
                    f"{where}: the query failed ({_database_message(exc, url)})."
                ) from exc
    finally:
        engine.dispose()


def _engine(url: str, where: str) -> Any:
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            args = {"connect_timeout": CONNECT_TIMEOUT_S}
        return create_engine(parsed, connect_args=args, pool_pre_ping=False)
    except ImportError as exc:
        raise SetupError(
            f"{where}: its database driver is not installed ({exc}): {EXTRA}."
        ) from exc
    except Exception as exc:  # a malformed URL: SQLAlchemy's ArgumentError
        raise DataError(
            f"{where}: not a database URL SQLAlchemy reads ({type(exc).__name__}); write it as "
            "dialect+driver://user:password@host:port/database."
        ) from exc


def _text(query: str) -> Any:
    from sqlalchemy import text

    return text(query)


def _database_message(exc: BaseException, url: str) -> str:
    """The driver's own message in one line (pandas and SQLAlchemy wrappers removed), with any
    password in it masked."""
    cause: BaseException | object = exc
    if isinstance(exc, pd.errors.DatabaseError) and exc.__cause__ is not None:
        cause = exc.__cause__
    message = first_line(getattr(cause, "orig", None) or cause)
    for secret in _secrets_of(url):
        message = message.replace(secret, "***")
    return message


def _secrets_of(url: str) -> list[str]:
    """What a database URL may hide a secret in: its password and its query's values."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL: no password to mask
        return []
    values = [str(parsed.password or "")]
    for value in parsed.query.values():
        values += [value] if isinstance(value, str) else list(value)
    return sorted((value for value in values if len(value) >= 3), key=len, reverse=True)


def first_line(exc: BaseException | object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
