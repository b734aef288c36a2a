"""Checks on the files a command is given, made before any work: one paragraph, not a traceback.

An output is checked before the model is loaded or a run is logged (a missing folder, a folder
where a file is expected, a folder that cannot be written); an input path that cannot be
resolved (a symbolic link loop) is named as such. An output is written beside its place, then
renamed onto it (`replaced`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ml_project.errors import ConfigError, DataError, SetupError


def absolute(text: str | Path, *, option: str) -> Path:
    """`text` made absolute (user folder expanded, links followed), or a DataError for a
    symbolic link loop. `option` names where it was given (e.g. `--table orders=a.csv`)."""
    path = Path(text).expanduser()
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11: RuntimeError("Symlink loop ...")
        raise DataError(
            f"{option}: a symbolic link loop (following its links leads back to it), "
            "so it names no file. Point it at the file itself."
        ) from exc


def describe_missing(path: Path) -> str:
    """Why `path` is not a readable file: a dangling or looping link, a folder, or nothing."""
    if path.is_symlink():
        return "a symbolic link that leads to no file (a loop or a missing target)"
    if path.is_dir():
        return "a folder, not a file"
    return "no such file"


def check_output_file(path: str | Path, *, option: str) -> Path:
    """`path` can be written as a file: its folder exists and is writable, and it is neither
    a folder nor a device or pipe (a file written beside it then renamed would replace the
    device itself). ConfigError (nothing was done) otherwise."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(
            f"{option} {path} is a folder: name a file in it (e.g. {path / 'out.parquet'}). "
            "Nothing was done."
        )
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"{option} {path} is not a regular file (a device, pipe or socket): outputs are "
            "written as files, complete or not at all. Name a file; nothing was done."
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(
            f"{option} {path}: the folder {parent} does not exist. Create it first "
            f"(mkdir -p {parent}); nothing was done."
        )
    if not os.access(parent, os.W_OK):
        raise ConfigError(
            f"{option} {path}: the folder {parent} is not writable; nothing was done."
        )
    return path


@contextmanager
def replaced(path: Path, *, option: str) -> Iterator[Path]:
    """A temporary path beside `path` to write (a file or a folder), renamed onto `path` when
    the block ends without error, removed otherwise: the output appears complete or not at
    all. A write that fails (a full disk, a lost mount) is a SetupError, nothing left."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield temporary
        if temporary.is_dir() and path.is_dir():
            shutil.rmtree(path)
        elif temporary.is_dir() and path.exists():
            path.unlink()
        os.replace(temporary, path)
    except OSError as exc:
        raise SetupError(
            f"{option} {path} cannot be written ({exc.strerror or exc}; a full disk or a lost "
            "mount): nothing was left in its place."
        ) from exc
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)


def write_whole(path: Path, write: Callable[[Path], object], *, option: str) -> None:
    """`write(temporary)` beside `path`, then renamed onto it (`replaced`)."""
    with replaced(path, option=option) as temporary:
        write(temporary)
