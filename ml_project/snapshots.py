"""Snapshots: the rows a training read, kept where `reproduce` finds them (an edge: files).

Each table is kept once per content, named by its digest: a local file as a copy of its bytes
(`<sha256 of the file><suffixes>`), any other source as Parquet of the rows read
(`<sha256 of the rows>.parquet`), in the run's artifacts (`snapshots/<table>/`) or under
`data.snapshot.location` (`<location>/<table>/`, a folder or fsspec URL, never rewritten). An
env that samples (data.sample_fraction < 1, staging) keeps only the rows of its subset: the
rows of each table holding every key column whose key was used, when the problem's records
of those rows are exactly the rows used (checked); else the whole tables. Local files are kept
only with `data.snapshot.local_files` (their sha256 names them; `reproduce --table` reads a copy).

The run's tags say what was kept: `data.snapshot` (kept, subset, off or why not) and per table
`data.table.<name>.snapshot` (where), `.snapshot_sha256` and `.snapshot_rows`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from ml_project import data, sources
from ml_project.inputs import Inputs
from ml_project.records import PreparedData, prepare_data
from ml_project.settings import Settings

logger = logging.getLogger(__name__)

ARTIFACT_FOLDER = "snapshots"
SNAPSHOT = "data.snapshot"


def table_tag(name: str, what: str) -> str:
    return f"data.table.{name}.{what}"


@dataclass(frozen=True)
class Kept:
    """One table's snapshot file, written locally, before it is stored."""

    table: str
    file: Path
    sha256: str
    rows: int


def keep(settings: Settings, inputs: Inputs, prepared: PreparedData, *, root: Path) -> None:
    """Keep the rows the active run read (as the settings say) and tag the run with where."""
    import mlflow

    choice = settings.data.snapshot
    if not choice.keep:
        mlflow.set_tags({SNAPSHOT: "off (data.snapshot.keep: false)"})
        return
    wanted = [
        name
        for name in inputs.tables
        if choice.local_files or not sources.is_local_file(inputs.paths[name])
    ]
    if not wanted:
        mlflow.set_tags({SNAPSHOT: "none: local files only (data.snapshot.local_files: false)"})
        return
    everything, subset = kept_tables(settings, inputs, prepared)
    tables = {name: everything[name] for name in wanted}
    tags: dict[str, str] = {}
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ml-project-snapshot-") as scratch:
        for name, table in tables.items():
            whole = table is inputs.tables[name]
            try:
                kept = write_local(Path(scratch), name, inputs.paths[name], table, whole=whole)
                over = too_large(kept, choice.max_mb)
                if over:
                    skipped.append(over)
                    continue
                where = store(kept, choice.location, root=root)
            except Exception as exc:  # noqa: BLE001 - any store's or client's error: the run goes on; its tags say why
                skipped.append(f"{name} ({sources.first_line(exc)})")
                logger.warning("snapshot of table %s not kept: %s", name, exc)
                continue
            tags[table_tag(name, "snapshot")] = where
            tags[table_tag(name, "snapshot_sha256")] = kept.sha256
            tags[table_tag(name, "snapshot_rows")] = str(kept.rows)
    state = "subset" if subset else "kept"
    tags[SNAPSHOT] = f"not kept for {', '.join(skipped)}" if skipped else state
    logger.info("snapshot: %s", tags[SNAPSHOT])
    mlflow.set_tags(tags)


def too_large(kept: Kept, max_mb: float) -> str:
    """Why a snapshot file is not kept ("" when it is within `max_mb`)."""
    size_mb = kept.file.stat().st_size / 1e6
    if size_mb <= max_mb:
        return ""
    return f"{kept.table} ({size_mb:.3g} MB > data.snapshot.max_mb={max_mb:g})"


def kept_tables(
    settings: Settings, inputs: Inputs, prepared: PreparedData
) -> tuple[dict[str, pd.DataFrame], bool]:
    """The tables to keep, and whether they are the sampled subset (checked to rebuild the
    same rows) rather than the whole tables."""
    if settings.data.sample_fraction >= 1:
        return dict(inputs.tables), False
    keys = list(settings.data.key_columns)
    used = pd.concat([prepared.split.train[keys], prepared.split.test[keys]], ignore_index=True)
    wanted = set(_key_hashes(used, keys).tolist())
    subset = {
        name: table.loc[_key_hashes(table, keys).isin(wanted).to_numpy()].reset_index(drop=True)
        if all(key in table.columns for key in keys)
        else table
        for name, table in inputs.tables.items()
    }
    if all(subset[name] is table for name, table in inputs.tables.items()):
        return dict(inputs.tables), False
    try:
        again = prepare_data(settings, inputs.problem, subset)
    except Exception as exc:  # noqa: BLE001 - the problem's own code: keep the whole tables
        logger.info("snapshot: the subset does not rebuild the rows (%s): whole tables kept", exc)
        return dict(inputs.tables), False
    if again.digests != prepared.digests:
        logger.info("snapshot: the subset does not rebuild the same rows: whole tables kept")
        return dict(inputs.tables), False
    return subset, True


def _key_hashes(frame: pd.DataFrame, keys: list[str]) -> pd.Series:
    """A hash per row of its key values as text (raw tables and records may type them apart)."""
    return pd.util.hash_pandas_object(frame[keys].astype(str), index=False)


def write_local(
    folder: Path, name: str, source: sources.Location, table: pd.DataFrame, *, whole: bool
) -> Kept:
    """The snapshot file of one table in `folder`: a whole local file's bytes, else Parquet."""
    if whole and isinstance(source, Path):
        digest = data.file_digest(source)
        suffixes = "".join(source.suffixes[-2:]) or ".csv"
        target = folder / name / f"{digest}{suffixes}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return Kept(name, target, digest, len(table))
    digest = data.frame_digest(table)
    target = folder / name / f"{digest}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(target, index=False)
    back = pd.read_parquet(target)
    if data.frame_digest(back) != digest:  # a type Parquet does not keep: the pickled rows
        raise ValueError(f"table {name}: its rows do not survive Parquet unchanged")
    return Kept(name, target, digest, len(table))


def store(kept: Kept, location: str, *, root: Path) -> str:
    """Store a snapshot file once: in the run's artifacts, or under `location` (not rewritten
    when a file of that name, hence that content, is there). Its URI."""
    import mlflow

    if not location:
        artifact = f"{ARTIFACT_FOLDER}/{kept.table}"
        mlflow.log_artifact(str(kept.file), artifact)
        run = mlflow.active_run()
        assert run is not None  # called inside the training run
        return f"runs:/{run.info.run_id}/{artifact}/{kept.file.name}"
    target = f"{_located(location, root).rstrip('/')}/{kept.table}/{kept.file.name}"
    if "://" in target:
        import fsspec

        fs, path = fsspec.core.url_to_fs(target, **sources.storage_options(target))
        if not fs.exists(path):
            fs.put_file(str(kept.file), path)
        return target
    path = Path(target)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        shutil.copyfile(kept.file, partial)
        os.replace(partial, path)
    return str(path)


def _located(location: str, root: Path) -> str:
    if urlsplit(location).scheme and "://" in location:
        return location
    path = Path(location).expanduser()
    return str(path if path.is_absolute() else Path(root) / path)


def fetch(uri: str, folder: Path, *, tracking_uri: str) -> Path:
    """A snapshot file (a run artifact or a stored location) copied into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if uri.startswith("runs:/"):
        import mlflow

        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(folder), tracking_uri=tracking_uri
        )
        return Path(local)
    target = folder / uri.rstrip("/").rsplit("/", 1)[-1]
    if "://" in uri:
        import fsspec

        fs, path = fsspec.core.url_to_fs(uri, **sources.storage_options(uri))
        fs.get_file(path, str(target))
        return target
    shutil.copyfile(uri, target)
    return target
