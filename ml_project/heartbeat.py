"""A running job's heartbeat: a run tag renewed every minute while the job lives.

The host and pid a run records (tracking.process_tags) tell a dead process from a live one only
on the same machine. A cancelled CI job or a lost machine is told by its silence instead: a run
whose last beat is older than `STALE_AFTER_S` is known to be gone wherever it ran
(recovery.process_gone), and `ml-project settle` or the next training settles what it left.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ml_project.vocabulary import HEARTBEAT

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

INTERVAL_S = 60
STALE_AFTER_S = 10 * INTERVAL_S  # ten missed beats: a store outage of minutes is not a death


def beat(now: float | None = None) -> dict[str, str]:
    """The tag a beat writes (seconds since the epoch): also the run's first, at its start."""
    return {HEARTBEAT: str(int(time.time() if now is None else now))}


def stale(tags: Mapping[str, str], *, now: float | None = None) -> bool | None:
    """Whether the run's last beat is older than STALE_AFTER_S; None for a run without one."""
    last = tags.get(HEARTBEAT, "")
    if not last.isdigit():
        return None
    return (time.time() if now is None else now) - int(last) > STALE_AFTER_S


@contextmanager
def beating(client: MlflowClient, run_id: str, *, every: float = INTERVAL_S) -> Iterator[None]:
    """Renew run `run_id`'s heartbeat every `every` seconds from a daemon thread while the
    block runs. A beat the store refuses is skipped (the next one tries again): the heartbeat
    never fails the job it watches."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(every):
            try:
                client.set_tag(run_id, HEARTBEAT, beat()[HEARTBEAT])
            except Exception as exc:  # noqa: BLE001 - a missed beat; the job itself goes on
                logger.debug("heartbeat of run %s skipped: %s", run_id, exc)

    thread = threading.Thread(target=renew, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
