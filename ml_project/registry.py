"""The model registry edge: aliases, the promotion history, and reading versions back.

Aliases, never stages: `challenger` while the gate judges a version, `champion` once it serves.
Each alias move is one registered-model tag of the history (`promotion.<UTC time>.<random>`), so
concurrent moves never overwrite each other's record. `move_alias` re-reads the alias and
refuses (`AliasChanged`) when it moved since the caller read it; on a sqlite store the read,
the move and its record happen under a file lock beside the database. A tracking server has no
such lock: the re-read narrows the race (run one training per env at a time there).
"""

from __future__ import annotations

import getpass
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ml_project import tracking
from ml_project.errors import RegistryError
from ml_project.tracking import redact, retry_locked, sqlite_lock
from ml_project.vocabulary import CHAMPION, RUN_ID, TASK, VERSION_LINEAGE, run_of

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

HISTORY_PREFIX = "promotion."
ANY = object()  # `expected` for a move that does not depend on where the alias points now

# Actions recorded in the history. A rollback pops the champion stack; anything else pushes.
ROLLBACK = "rollback"


class AliasChanged(Exception):
    """The alias moved since the caller read it; `current` is where it points now."""

    def __init__(self, current: str | None):
        super().__init__(current)
        self.current = current


@dataclass(frozen=True)
class Move:
    """Why an alias moves: what the history records besides the versions and the time."""

    action: str  # "gate", "forced", "rollback", "registered", "verdict", "copied"
    reason: str
    commit: str = ""
    run_id: str = ""


def actor() -> str:
    """Who moves an alias: $GITHUB_ACTOR in GitHub Actions, else the local user."""
    if os.environ.get("GITHUB_ACTOR"):
        return os.environ["GITHUB_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def registered_model(client: MlflowClient, model_name: str) -> RegisteredModel | None:
    """The registered model, None when the store has none of that name."""
    from mlflow.exceptions import MlflowException

    try:
        return retry_locked(client.get_registered_model, model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def alias_version(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """The version `alias` points to now, or None (also when the model is not registered)."""
    model = registered_model(client, model_name)
    version = None if model is None else model.aliases.get(alias)
    return None if version is None else str(version)


def get_version(client: MlflowClient, model_name: str, version: str) -> ModelVersion:
    """The ModelVersion, or a RegistryError naming what is missing."""
    from mlflow.exceptions import MlflowException

    try:
        return retry_locked(client.get_model_version, model_name, str(version))
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(
                f"Registered model {model_name} has no version {version} in the store "
                f"{redact(client.tracking_uri)}; `ml-project show` lists its versions."
            ) from exc
        raise


# What a model version carries of its run's lineage: the few tags a reviewer reads in the
# registry. The rest (data files, row counts, package versions, digests) stays on the run.
VERSION_LINEAGE_KEYS = (*VERSION_LINEAGE, TASK)


def version_lineage(tags: dict[str, str], run_id: str) -> dict[str, str]:
    """A new version's tags from its run's lineage `tags`: VERSION_LINEAGE_KEYS and the run."""
    return {key: tags[key] for key in VERSION_LINEAGE_KEYS if key in tags} | {RUN_ID: run_id}


def lineage_of(client: MlflowClient, version: ModelVersion) -> dict[str, str]:
    """Every lineage tag of `version`: its training run's tags, then its own on top (a version
    whose run is gone, or of another store, has its own only)."""
    from mlflow.exceptions import MlflowException

    tags = dict(version.tags or {})
    run_id = run_of(tags, version.run_id)
    if not run_id:
        return tags
    try:
        run = retry_locked(client.get_run, run_id)
    except MlflowException:
        return tags
    return {**run.data.tags, **tags}


set_version_tags = tracking.set_version_tags


def delete_version_tags(
    client: MlflowClient, model_name: str, version: str, keys: Iterable[str]
) -> None:
    for key in keys:
        retry_locked(client.delete_model_version_tag, model_name, str(version), key)


@contextmanager
def promotion_lock(client: MlflowClient) -> Iterator[None]:
    """Exclusive across processes for a local sqlite store; a no-op for a tracking server."""
    with sqlite_lock(os.environ.get("MLFLOW_REGISTRY_URI") or client.tracking_uri, "promotion"):
        yield


def move_alias(
    client: MlflowClient,
    model_name: str,
    alias: str,
    version: str | None,
    *,
    move: Move,
    expected: object = ANY,
) -> dict[str, Any]:
    """Point `alias` at `version` (None: remove it) and append the move to the history.

    With `expected` (a version or None), refuse with AliasChanged if the alias no longer
    points there. Returns the history entry.
    """
    with promotion_lock(client):
        current = alias_version(client, model_name, alias)
        if expected is not ANY and current != expected:
            raise AliasChanged(current)
        if version is None:
            if current is None:
                return {}
            retry_locked(client.delete_registered_model_alias, model_name, alias)
        else:
            retry_locked(client.set_registered_model_alias, model_name, alias, str(version))
        return append_history(client, model_name, alias, current, version, move)


def remove_alias_if(
    client: MlflowClient, model_name: str, alias: str, version: str, *, move: Move
) -> bool:
    """Remove `alias` only if it still points at `version` (another process may own it now)."""
    try:
        move_alias(client, model_name, alias, None, move=move, expected=str(version))
    except AliasChanged:
        return False
    return True


def append_history(
    client: MlflowClient,
    model_name: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    move: Move,
) -> dict[str, Any]:
    """Record one alias move as its own registered-model tag."""
    now = datetime.now(UTC)
    entry = {
        "time": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "alias": alias,
        "action": move.action,
        "from_version": None if from_version is None else str(from_version),
        "to_version": None if to_version is None else str(to_version),
        "reason": move.reason,
        "actor": actor(),
        "commit": move.commit,
        "run_id": move.run_id,
    }
    key = f"{HISTORY_PREFIX}{now:%Y%m%dT%H%M%S%f}Z.{uuid.uuid4().hex[:8]}"
    retry_locked(client.set_registered_model_tag, model_name, key, json.dumps(entry))
    model = retry_locked(client.get_registered_model, model_name)
    description = history_note(model.description or "", read_history(model.tags))
    retry_locked(client.update_registered_model, model_name, description)
    return entry


HISTORY_NOTE = "<!-- ml-project: promotion history below, rewritten on every alias move -->"
NOTE_MOVES = 20


def history_note(description: str, entries: list[dict[str, Any]]) -> str:
    """`description` (whatever a person wrote above the marker is kept) with the last NOTE_MOVES
    alias moves as a Markdown table, newest first: MLflow's UI renders it on the model's page."""
    kept = description.split(HISTORY_NOTE, 1)[0].rstrip()
    shown = entries[::-1][:NOTE_MOVES]
    lines = [
        HISTORY_NOTE,
        "",
        f"**Promotion history** (last {len(shown)} of {len(entries)} alias moves; "
        "`ml-project show` lists them all):",
        "",
        "| time (UTC) | alias | move | version | reason | by | commit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in shown:
        moved = f"{entry.get('from_version') or '-'} -> {entry.get('to_version') or '-'}"
        cells = [
            str(entry.get("time", ""))[:19].replace("T", " "),
            entry.get("alias", ""),
            entry.get("action", ""),
            moved,
            entry.get("reason", ""),
            entry.get("actor", ""),
            str(entry.get("commit") or "")[:7],
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(([kept, ""] if kept else []) + lines) + "\n"


def _cell(text: object) -> str:
    """One Markdown table cell: no pipe or line break can break the row."""
    return " ".join(str(text or "").replace("|", "\\|").split())


def read_history(registered_model_tags: dict[str, str]) -> list[dict[str, Any]]:
    """The promotion history held in a registered model's tags, oldest first."""
    entries = []
    for key in sorted(k for k in registered_model_tags if k.startswith(HISTORY_PREFIX)):
        try:
            entry = json.loads(registered_model_tags[key])
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def history(client: MlflowClient, model_name: str) -> list[dict[str, Any]]:
    model = registered_model(client, model_name)
    return [] if model is None else read_history(model.tags)


def champion_stack(entries: list[dict[str, Any]]) -> list[str]:
    """The champions in force, oldest first: each move pushes its version, a rollback pops."""
    stack: list[str] = []
    for entry in entries:
        if entry.get("alias") != CHAMPION:
            continue
        if entry.get("action") == ROLLBACK:
            if stack:
                stack.pop()
        elif entry.get("to_version") is not None:
            stack.append(str(entry["to_version"]))
    return stack
