"""The content digest of a skops file: the one digest two identical retrains share.

The bytes of a skops file differ every time even the same fitted model is saved: it is a zip
whose entries carry the time they were written, and skops names what it stores after the Python
object ids of the process that saved it: every `__id__` in `schema.json` (which objects are
shared), each array's entry `<id>.npy` (and `.npz`), and each bytes entry after a random uuid.
`content_digest` hashes all the rest: `schema.json` with each id and entry name replaced by its
rank of first appearance (a set's items in a fixed order: their order is the process's hashing),
then every entry's bytes in that order. Two files with the same digest hold the same schema and
the same bytes in every array; the MLmodel beside the file is not covered (it carries the run's
ids and times).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

SCHEMA = "schema.json"
_SET_LOADER = "SetNode"


class _Ranks:
    """The rank of each object id and entry name, in the order they are first met."""

    def __init__(self, entries: set[str]) -> None:
        self.entries = entries
        self.ids: dict[int, int] = {}
        self.files: dict[str, str] = {}

    def id_of(self, value: int) -> int:
        return self.ids.setdefault(value, len(self.ids))

    def file_of(self, name: str) -> str:
        suffix = Path(name).suffix
        return self.files.setdefault(name, f"{len(self.files)}{suffix}")


def _without_ids(node: Any) -> Any:
    """A node with its ids and entry names dropped: the sort key of a set's items."""
    if isinstance(node, dict):
        return {k: _without_ids(v) for k, v in node.items() if k not in ("__id__", "file")}
    if isinstance(node, list):
        return [_without_ids(item) for item in node]
    return node


def _canonical(node: Any, ranks: _Ranks) -> Any:
    """`node` of schema.json with ids and entry names ranked, keys walked in sorted order."""
    if isinstance(node, list):
        return [_canonical(item, ranks) for item in node]
    if not isinstance(node, dict):
        return node
    items = dict(node)
    if items.get("__loader__") == _SET_LOADER and isinstance(items.get("content"), list):
        key = lambda item: json.dumps(_without_ids(item), sort_keys=True)  # noqa: E731
        items["content"] = sorted(items["content"], key=key)
    canonical: dict[str, Any] = {}
    for name in sorted(items):
        value = items[name]
        if name == "__id__" and isinstance(value, int) and not isinstance(value, bool):
            canonical[name] = ranks.id_of(value)
        elif name == "file" and isinstance(value, str) and value in ranks.entries:
            canonical[name] = ranks.file_of(value)
        else:
            canonical[name] = _canonical(value, ranks)
    return canonical


def content_digest(data: bytes) -> str:
    """sha256 of a skops file's content (`data`, its bytes), free of the ids, entry names and
    times that change each time a model is saved; ValueError if it is no skops file."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a skops file (a zip): {exc}") from exc
    if SCHEMA not in entries:
        raise ValueError(f"not a skops file: it has no {SCHEMA}")
    ranks = _Ranks(set(entries) - {SCHEMA})
    schema = _canonical(json.loads(entries[SCHEMA]), ranks)
    digest = hashlib.sha256()
    _feed(digest, SCHEMA, json.dumps(schema, sort_keys=True, separators=(",", ":")).encode())
    for name, rank in ranks.files.items():
        _feed(digest, rank, entries[name])
    for name in sorted(ranks.entries - set(ranks.files)):  # an entry the schema never names
        _feed(digest, name, entries[name])
    return digest.hexdigest()


def _feed(digest: Any, name: str, content: bytes) -> None:
    digest.update(f"{name}:{len(content)}:".encode())
    digest.update(content)


def file_content_digest(path: Path) -> str:
    """`content_digest` of the skops file at `path`."""
    return content_digest(Path(path).read_bytes())


def model_content_digest(model: object) -> str:
    """`content_digest` of `model` saved as MLflow saves it (skops, its defaults)."""
    import skops.io

    return content_digest(skops.io.dumps(model))
