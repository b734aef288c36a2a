"""The champion next to a new version, on held-out rows neither of them trained on.

Which rows the champion saw is rebuilt from the config, seed and data its run recorded, and
checked against its recorded train digest; when that cannot be established (`CannotCompare`)
the comparison fails, and so does the gate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from ml_project import data, gate, lineage, loading, metrics, records, registry, snapshots, sources
from ml_project.errors import ConfigError, RegistryError
from ml_project.evaluation import HeldOut, subset
from ml_project.input_rules import unchecked
from ml_project.settings import deep_merge, validate_settings
from ml_project.vocabulary import DATA_TABLES, REBUILD_PROTOCOL, TASK, run_of

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


# What a recorded config decides of the rows its run trained on.
PICKED = ("seed", "data", "split", "features", "params")


class CannotCompare(Exception):
    """The rows a version trained on cannot be established, so no fair comparison exists."""


def recorded_config(run_id: str) -> dict[str, Any]:
    """The resolved settings a training run logged (config/settings.yaml)."""
    import mlflow.artifacts
    import yaml

    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/config/settings.yaml")
    except Exception as exc:  # missing run or artifact: the rows it used are unknown
        raise CannotCompare(f"the config of its run {run_id} cannot be read ({exc})") from exc
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise CannotCompare(f"the config of its run {run_id} is not a mapping")
    return config


def seen_rows(client: MlflowClient, version: ModelVersion, held: HeldOut) -> np.ndarray:
    """Which of `held`'s rows `version` trained on (a boolean mask).

    None, without any work, when its recorded split rule (seed, test fraction, key columns) and
    data files equal the current ones: a row's side depends only on those. Otherwise its train
    rows are rebuilt from its recorded config and data, checked against its recorded train
    digest, and matched to `held`'s rows by their key columns.
    """
    tags = registry.lineage_of(client, version)
    label = f"version {version.version}"
    run_id = run_of(tags, version.run_id)
    if not run_id:
        raise CannotCompare(f"{label} records no training run, so its training rows are unknown")
    recorded = recorded_config(run_id)
    current = held.settings.model_dump(mode="json")
    differences = gate.split_rule_differences(recorded, current)
    if tags.get(REBUILD_PROTOCOL) != lineage.REBUILD_PROTOCOL:  # an older sampling rule
        differences.append("trained by an older ml-project (sampling and split rule)")
    same_files = all(
        tags.get(f"data.table.{name}.sha256") == digest
        for name, digest in held.file_digests.items()
    )
    if not differences and same_files:
        return np.zeros(len(held.test), dtype=bool)
    tables = held.tables if same_files else _recorded_tables(tags, label)
    picked = {key: recorded[key] for key in PICKED if key in recorded}
    try:
        source_settings = validate_settings(deep_merge(current, picked))
    except ConfigError as exc:
        raise CannotCompare(f"the config {label} recorded no longer validates ({exc})") from exc
    prepared = records.prepare_data(source_settings, held.problem, tables)
    expected = tags.get("data.train_digest")
    if expected is None or prepared.digests["train_digest"] != expected:
        raise CannotCompare(
            f"rebuilding the rows {label} trained on does not reproduce its recorded "
            "data.train_digest"
        )
    keys = list(held.settings.data.key_columns)
    missing = [key for key in keys if key not in prepared.split.train.columns]
    if missing:
        raise CannotCompare(f"{label}'s training rows lack the key columns {missing}")
    trained = prepared.split.train[keys].astype(str).drop_duplicates()
    merged = held.test[keys].astype(str).merge(trained, how="left", on=keys, indicator=True)
    return cast(np.ndarray, merged["_merge"].eq("both").to_numpy())


def _recorded_tables(tags: dict[str, str], label: str) -> dict[str, pd.DataFrame]:
    """The data files a version's run read, if they still exist unchanged."""
    tables = {}
    names = [name for name in (tags.get(DATA_TABLES) or "").split(",") if name]
    if not names:
        raise CannotCompare(f"{label} records no data.tables, so its training rows are unknown")
    for name in names:
        kept = tags.get(f"data.table.{name}.snapshot")
        if kept:  # the rows its run kept (snapshots.py): a database table may have grown since
            tables[name] = _kept_table(name, kept, label)
            continue
        path, digest = tags.get(f"data.table.{name}.path"), tags.get(f"data.table.{name}.sha256")
        if not path or not Path(path).is_file() or data.file_digest(path) != digest:
            raise CannotCompare(
                f"the {name} table {label} trained on ({path}) is gone or changed, so its "
                "training rows cannot be rebuilt"
            )
        tables[name] = data.read_table(path)
    return tables


def _kept_table(name: str, uri: str, label: str) -> pd.DataFrame:
    """A table's snapshot, read from where its run kept it; CannotCompare if it cannot be."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="ml-project-snapshot-") as folder:
        try:
            path = snapshots.fetch(uri, Path(folder), tracking_uri=mlflow.get_tracking_uri())
            return sources.read(path)
        except Exception as exc:  # any store's error: the comparison fails closed
            raise CannotCompare(
                f"the snapshot of the {name} table {label} trained on ({uri}) cannot be read "
                f"({sources.first_line(exc)})"
            ) from exc


def compare_with_champion(
    client: MlflowClient, held: HeldOut, champion: str, predictions: metrics.Predictions
) -> gate.Champion:
    """Score the champion and the new version on the same held-out rows neither trained on."""
    task = held.settings.task
    name = held.settings.model_name
    try:
        version = registry.get_version(client, name, champion)
        their_task = version.tags.get(TASK, task)
        if their_task != task:
            raise CannotCompare(
                f"it is a {their_task} model and this version a {task} one: their metrics do not "
                "compare (if the change is meant, review it and `ml-project promote` by hand)"
            )
        seen = seen_rows(client, version, held)
    except (CannotCompare, RegistryError) as exc:
        return gate.Champion(champion, error=str(exc))
    keep = ~seen
    if not keep.any():
        return gate.Champion(champion, error="it trained on every one of these held-out rows")
    try:
        model = unchecked(
            loading.load_sklearn(f"models:/{name}/{champion}", loading.trusted_types(held.problem))
        )
        theirs = metrics.predict(*metrics.final_step(model, held.model_rows(keep)), task)
    except Exception as exc:  # noqa: BLE001 - fail closed, and say why: the verdict carries the message
        return gate.Champion(champion, error=f"it could not score the rows ({exc})")
    labels, own = held.labels[keep], held.problem.metrics
    return gate.Champion(
        version=champion,
        champion=metrics.compute(task, labels, theirs, own),
        challenger=metrics.compute(task, labels, subset(predictions, keep), own),
        rows=int(keep.sum()),
        excluded_rows=int(seen.sum()),
    )
