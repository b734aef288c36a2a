"""Work done aside (aside.py): a call in a forked child hands back its value, its refusal or its
crash; a child still running when the caller leaves is killed; ML_PROJECT_CHECK_ASIDE=0 calls at
once, here; a call in a thread is waited for, or abandoned."""

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ml_project import aside
from ml_project.errors import ConfigError, DataError

linux = pytest.mark.skipif(sys.platform != "linux", reason="a call runs aside only on Linux")


def children() -> set[int]:
    """This process's child processes, as Linux lists them."""
    found: set[int] = set()
    for listing in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        found.update(int(pid) for pid in listing.read_text().split())
    return found


@pytest.fixture
def forking(monkeypatch):
    monkeypatch.delenv(aside.CHECK_ASIDE, raising=False)
    before = children()  # an xdist worker may hold others (the preloaded CLI server)
    yield
    assert children() == before  # no child left behind


@linux
def test_a_value_comes_back_from_the_child_with_its_seconds(forking):
    frame = pd.DataFrame({"x": [1.0, 2.0, float("nan")], "t": ["a", None, "c"]})
    parent = os.getpid()

    def work() -> tuple[int, pd.DataFrame]:
        time.sleep(0.2)
        return os.getpid(), frame.assign(y=frame["x"] * 2)

    with aside.beside(work, what="a test's call") as pending:
        assert not pending.done
        pid, doubled = pending()
    assert pid not in (parent, 0) and pending.done
    assert doubled.equals(frame.assign(y=frame["x"] * 2))
    assert 0.2 <= pending.seconds < 30
    again = pending()  # asking again: the same answer, not a second wait
    assert again[0] == pid and again[1].equals(doubled)


@linux
def test_a_refusal_comes_back_as_itself_with_its_message_alone(forking):
    def refuses() -> None:
        raise DataError("t.csv: column x must be below 2 (3 rows)")

    with aside.beside(refuses, what="a test's call") as pending, pytest.raises(DataError) as raised:
        pending()
    assert str(raised.value) == "t.csv: column x must be below 2 (3 rows)"
    assert not getattr(raised.value, "__notes__", None)  # a paragraph of its own, no traceback

    def bad_suite() -> None:
        raise ConfigError("bad suite")

    with aside.beside(bad_suite, what="w") as bad, pytest.raises(ConfigError, match="^bad suite$"):
        bad()


@linux
def test_a_crash_comes_back_with_the_childs_traceback(forking):
    class Unpicklable(Exception):
        def __init__(self, text: str, *, extra: int):  # pickle cannot rebuild it
            super().__init__(text)

    def breaks() -> None:
        raise KeyError("boom")

    with (
        aside.beside(breaks, what="a test's call") as pending,
        pytest.raises(KeyError, match="boom") as raised,
    ):
        pending()
    assert "Raised in the forked child of a test's call" in raised.value.__notes__[0]

    def breaks_oddly() -> None:
        raise Unpicklable("odd", extra=1)

    with (
        aside.beside(breaks_oddly, what="a test's call") as pending,
        pytest.raises(RuntimeError, match="a test's call failed: Unpicklable: odd"),
    ):
        pending()

    with (
        aside.beside(threading.Lock, what="a test's call") as pending,  # a value pickle refuses
        pytest.raises(TypeError, match="cannot pickle"),
    ):
        pending()


@linux
def test_a_child_that_dies_without_answering_is_an_error_naming_the_call(forking):
    dies = r"^the x check stopped without an answer \(exit -9\)"
    with (
        aside.beside(lambda: os.kill(os.getpid(), signal.SIGKILL), what="the x check") as pending,
        pytest.raises(RuntimeError, match=dies),
    ):
        pending()


@linux
def test_a_child_still_running_when_the_caller_leaves_is_killed(forking):
    started = time.monotonic()
    with (
        pytest.raises(ValueError, match="the work beside failed"),
        aside.beside(lambda: time.sleep(60), what="a slow check"),
    ):
        raise ValueError("the work beside failed")
    assert time.monotonic() - started < 30


def test_with_aside_turned_off_the_call_is_made_at_once_here(monkeypatch):
    monkeypatch.setenv(aside.CHECK_ASIDE, "0")
    assert not aside.allowed()
    ran_in: list[int] = []
    with aside.beside(lambda: ran_in.append(os.getpid()) or 7, what="a call") as pending:
        assert ran_in == [os.getpid()] and pending.done  # before the block's work
        assert pending() == 7

    def refuses() -> None:
        raise DataError("refused")

    with pytest.raises(DataError, match="^refused$"), aside.beside(refuses, what="a call"):
        pytest.fail("the block runs after a refusal made at once")  # raised at once, as ever
    monkeypatch.delenv(aside.CHECK_ASIDE)
    with aside.beside(lambda: os.getpid(), what="a call", aside=False) as pending:
        assert pending() == os.getpid()


def test_a_fork_the_system_refuses_makes_the_call_here(monkeypatch):
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.delenv(aside.CHECK_ASIDE, raising=False)
    monkeypatch.setattr(os, "fork", no_fork)
    with aside.beside(os.getpid, what="a call") as pending:
        assert pending.done and pending() == os.getpid()


def test_a_call_in_a_thread_is_waited_for_or_abandoned():
    release = threading.Event()

    def slow() -> str:
        release.wait(30)
        return threading.current_thread().name

    threaded = aside.in_thread(slow, name="fit")
    release.set()
    assert threaded.result() == "fit"

    def breaks() -> None:
        raise MemoryError("the fit ran out of memory")

    with pytest.raises(MemoryError, match="the fit ran out of memory"):
        aside.in_thread(breaks, name="fit").result()
    stuck = threading.Event()
    abandoned = aside.in_thread(lambda: stuck.wait(30), name="abandoned")
    assert abandoned._thread.daemon  # does not hold the process at its exit
    stuck.set()
