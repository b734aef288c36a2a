"""Progress lines: one a stage as it ends, `name: 1.2 s, 27,004 rows, detail`, on stderr.

Library code never prints: it logs here, and the CLI sets the level (`--quiet` or
ML_PROJECT_QUIET=1: none). A long training, scoring or reproduction is never silent.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)


def line(name: str, seconds: float, *, rows: int | None = None, detail: str = "") -> None:
    """The line of a stage that took `seconds` (over `rows` rows when it counts them)."""
    parts = [f"{name}: {seconds:.1f} s"]
    if rows is not None:
        parts.append(f"{rows:,} rows")
    if detail:
        parts.append(detail)
    logger.info(", ".join(parts))


@dataclass
class Stage:
    """A stage being timed; what it learns while it runs (rows, a detail) goes into its line."""

    name: str
    rows: int | None = None
    detail: str = ""
    seconds: float = 0.0


@contextmanager
def stage(name: str, rows: int | None = None) -> Iterator[Stage]:
    """Time a stage; its line when it ends normally (a failure says more on its own)."""
    current = Stage(name, rows)
    start = time.perf_counter()
    try:
        yield current
    finally:
        current.seconds = time.perf_counter() - start
    line(name, current.seconds, rows=current.rows, detail=current.detail)
