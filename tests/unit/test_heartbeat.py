"""A run's heartbeat: how a run of another machine is known to be gone, and that the beat never
fails the job it watches."""

import os
import socket
import threading
import time
from types import SimpleNamespace

from ml_project import heartbeat, recovery
from ml_project.vocabulary import HEARTBEAT, HOST, PID


def test_a_beat_older_than_the_limit_is_stale_and_a_run_without_one_is_unknown():
    now = 1_000_000.0
    assert heartbeat.stale(heartbeat.beat(now), now=now) is False
    assert heartbeat.stale(heartbeat.beat(now - heartbeat.STALE_AFTER_S + 1), now=now) is False
    assert heartbeat.stale(heartbeat.beat(now - heartbeat.STALE_AFTER_S - 1), now=now) is True
    assert heartbeat.stale({}, now=now) is None
    assert heartbeat.stale({HEARTBEAT: "soon"}, now=now) is None


class Client:
    """Records each beat; the first `failures` beats are refused."""

    def __init__(self, failures: int = 0):
        self.beats: list[tuple[str, str, str]] = []
        self.failures = failures
        self.called = threading.Event()

    def set_tag(self, run_id, key, value):
        self.called.set()
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store away")
        self.beats.append((run_id, key, value))


def test_beats_are_renewed_while_the_block_runs_and_stop_with_it():
    client = Client(failures=1)  # a refused beat is skipped, the next one lands
    with heartbeat.beating(client, "r1", every=0.02):
        deadline = time.monotonic() + 10
        while len(client.beats) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(client.beats) >= 2
    assert {(run, key) for run, key, _ in client.beats} == {("r1", HEARTBEAT)}
    count = len(client.beats)
    time.sleep(0.1)
    assert len(client.beats) == count  # no beat after the block
    assert not any(t.name == "heartbeat-r1" for t in threading.enumerate())


def run(tags: dict) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(tags=tags))


def test_a_run_of_another_machine_is_gone_only_when_its_heartbeat_is_silent():
    elsewhere = {HOST: "ci-runner-that-is-not-this-machine", PID: "4242"}
    old = heartbeat.beat(time.time() - heartbeat.STALE_AFTER_S - 60)
    assert recovery.process_gone(run({**elsewhere, **old})) is True
    assert "silent for 11 minutes" in recovery.why_gone(run({**elsewhere, **old}))
    assert recovery.process_gone(run({**elsewhere, **heartbeat.beat()})) is False
    assert recovery.process_gone(run(elsewhere)) is False  # no beat (an older run): unknown


def test_on_this_machine_the_process_decides_whatever_the_heartbeat_says():
    here = {HOST: socket.gethostname()}
    old = heartbeat.beat(time.time() - heartbeat.STALE_AFTER_S - 60)
    assert recovery.process_gone(run({**here, PID: "999999999", **heartbeat.beat()})) is True
    assert recovery.process_gone(run({**here, PID: str(os.getpid()), **old})) is False
