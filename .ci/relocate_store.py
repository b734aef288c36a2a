"""Make an embedded MLflow store copied from another machine (a fork's CI artifact) open here.

A sqlite store records its artifact folder by absolute path (the CI runner's,
/home/runner/work/...): unzipped elsewhere, the UI lists no artifacts and no model loads until
those paths name the store's new place. Python's standard library only:

    python3 .ci/relocate_store.py ci-store    # the folder holding mlflow.db and mlartifacts/
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

ARTIFACTS = "/mlartifacts"  # the artifact folder beside mlflow.db (ml_project/tracking.py)
TEXT_TYPES = ("CHAR", "TEXT", "CLOB")


def recorded_folder(database: sqlite3.Connection) -> str | None:
    """The store's folder where it was written, from its experiments' artifact locations."""
    for (location,) in database.execute("SELECT artifact_location FROM experiments"):
        path = unquote(urlparse(location).path) if location.startswith("file:") else location
        if ARTIFACTS in path:
            return path[: path.index(ARTIFACTS)]
    return None


def relocate(folder: Path) -> tuple[str | None, int]:
    """Rewrite every recorded path under the old folder to `folder`: (old folder, values)."""
    path = folder / "mlflow.db"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: give the folder holding the store's mlflow.db.")
    new = str(folder.resolve())
    with sqlite3.connect(path) as database:
        old = recorded_folder(database)
        if old is None or old == new:
            return old, 0
        changed = 0
        tables = [row[0] for row in database.execute("SELECT name FROM sqlite_master")]
        for table in (name for name in tables if not name.startswith("sqlite_")):
            for column in database.execute(f'PRAGMA table_info("{table}")').fetchall():
                if any(kind in str(column[2]).upper() for kind in TEXT_TYPES):
                    changed += database.execute(
                        f'UPDATE "{table}" SET "{column[1]}" = '
                        f'replace("{column[1]}", ?, ?) WHERE instr("{column[1]}", ?) > 0',
                        (old + "/", new + "/", old + "/"),
                    ).rowcount
    return old, changed


def main(arguments: list[str]) -> None:
    say = sys.stdout.write
    if len(arguments) != 1:
        raise SystemExit(__doc__)
    folder = Path(arguments[0])
    old, changed = relocate(folder)
    where = folder.resolve()
    if old is None:
        say(f"{where}/mlflow.db records no artifact folder: nothing to relocate.\n")
    elif changed == 0:
        say(f"{where}/mlflow.db already records its own folder.\n")
    else:
        say(f"{changed} recorded paths moved from {old} to {where}.\n")
    say(f"Open it: mlflow ui --backend-store-uri sqlite:///{where}/mlflow.db\n")


if __name__ == "__main__":
    main(sys.argv[1:])
