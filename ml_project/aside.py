"""Work done aside while the caller goes on: a call in a forked child (`beside`), its value handed
back through a pipe, or a call in a thread (`in_thread`).

A check (great-expectations: its import, the suite's build and the check take seconds) runs in a
forked child on the other core while this process goes on with the work that follows it (scoring
a chunk, building the features, fitting); the caller waits for its verdict before that work's
result counts. The child calls the function, writes its value (pickled) or what it raised to the
pipe, and leaves with os._exit: no exit handlers, no buffered output, nothing inherited closed (gc
is frozen across the fork, so the child's collections leave the objects it shares alone). The
function must not touch MLflow or the store: the child inherits their connections. Linux only (a
fork of a process with threads is not safe on macOS); elsewhere, or with ML_PROJECT_CHECK_ASIDE=0,
the function is called at once, in this process.
"""

from __future__ import annotations

import contextvars
import gc
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, NoReturn, TypeVar

from ml_project.errors import ProjectError

T = TypeVar("T")

CHECK_ASIDE = "ML_PROJECT_CHECK_ASIDE"


def allowed() -> bool:
    """Whether a call may run in a forked child here (Linux, and not ML_PROJECT_CHECK_ASIDE=0)."""
    return sys.platform == "linux" and os.environ.get(CHECK_ASIDE, "1") != "0"


class Pending(Generic[T]):
    """A call started aside (or made at once): calling it waits for the call's value and returns
    it, or raises what the call raised; `seconds` is how long the call took where it ran."""

    def __init__(self, what: str, *, pid: int = 0, read_end: int = -1):
        self.what = what
        self.pid, self._read_end = pid, read_end
        self.done = False  # the call's outcome is here (made at once, or received)
        self.seconds = 0.0
        self._value: Any = None
        self._raised: BaseException | None = None

    @classmethod
    def called(cls, what: str, work: Callable[[], T]) -> Pending[T]:
        """`work()` called now, here; what it raises is raised now."""
        pending: Pending[T] = cls(what)
        started = time.perf_counter()
        pending._value = work()
        pending.seconds, pending.done = time.perf_counter() - started, True
        return pending

    def __call__(self) -> T:
        if not self.done:
            self._receive()
        if self._raised is not None:
            raise self._raised
        return self._value  # type: ignore[no-any-return]

    def _receive(self) -> None:
        read_end, self._read_end = self._read_end, -1  # closed below, whatever happens
        with os.fdopen(read_end, "rb") as stream:
            said = stream.read()
        code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        self.done = True
        try:
            passed, payload, self.seconds = pickle.loads(said)  # our own child's answer
        except Exception:  # noqa: BLE001 - the child died before it said anything whole
            self._raised = RuntimeError(f"{self.what} stopped without an answer (exit {code}).")
            return
        if passed:
            self._value = payload
        else:
            self._raised = _unpickled(self.what, *payload)

    def stop(self) -> None:
        """Kill the child if its answer was not awaited (the caller left the block early)."""
        if self.done or self.pid == 0:
            return
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        if self._read_end >= 0:
            os.close(self._read_end)
        self.done = True
        self._raised = RuntimeError(f"{self.what} was stopped before it answered.")


@contextmanager
def beside(work: Callable[[], T], *, what: str, aside: bool = True) -> Iterator[Pending[T]]:
    """`work()` in a forked child while the block runs (see the module's docstring), or at once
    here when not `aside` or not allowed(). Calling what the block gets returns its value or
    raises what it raised (a DataError as itself); a child still running when the block ends is
    killed; a fork the system refuses makes the call here. `what` names the work in the error a
    child that died without answering raises."""
    if not (aside and allowed()):
        yield Pending.called(what, work)
        return
    read_end, write_end = os.pipe()
    gc.freeze()  # the child's collections leave the objects it shares with us (their pages) alone
    try:
        pid = os.fork()
    except OSError:  # no process to be had (memory, a process limit): the call is made here
        gc.unfreeze()
        os.close(read_end)
        os.close(write_end)
        yield Pending.called(what, work)
        return
    if pid == 0:  # the child
        os.close(read_end)
        _call_in_child(work, write_end)
    gc.unfreeze()
    os.close(write_end)
    pending: Pending[T] = Pending(what, pid=pid, read_end=read_end)
    try:
        yield pending
    finally:
        pending.stop()


def _call_in_child(work: Callable[[], Any], out: int) -> NoReturn:
    """The forked child's whole life: call, write (passed, value or what was raised, seconds) to
    `out`, and leave without the parent's exit handlers or buffered output."""
    code = 0
    try:
        started = time.perf_counter()
        try:
            answer: tuple[bool, Any, float] = (True, work(), 0.0)
        except BaseException as exc:  # noqa: BLE001 - told to the parent, which raises it
            answer = (False, _raised(exc), 0.0)
        seconds = time.perf_counter() - started
        try:
            said = pickle.dumps((answer[0], answer[1], seconds), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - a value pickle cannot carry
            said = pickle.dumps((False, _raised(exc), seconds))
        view = memoryview(said)
        while view:
            view = view[os.write(out, view) :]
    except BaseException:  # noqa: BLE001 - the parent says the child died without an answer
        code = 1
    finally:
        os._exit(code)


def _raised(exc: BaseException) -> tuple[bytes | None, str, str]:
    """An exception as the child sends it: pickled when it comes back whole, its text, its
    traceback."""
    text = f"{type(exc).__name__}: {exc}"
    told = "".join(traceback.format_exception(exc))
    try:
        pickled = pickle.dumps(exc)
        pickle.loads(pickled)  # some exceptions do not come back
    except Exception:  # noqa: BLE001 - then its text goes, in a RuntimeError
        pickled = None
    return pickled, text, told


def _unpickled(what: str, pickled: bytes | None, text: str, told: str) -> BaseException:
    """What a child raised, raised here: the exception itself, or a RuntimeError with its text;
    one the CLI does not report as a paragraph of its own carries the child's traceback."""
    exc: BaseException = (
        pickle.loads(pickled)  # our own child's answer
        if pickled is not None
        else RuntimeError(f"{what} failed: {text}")
    )
    if not isinstance(exc, ProjectError):
        exc.add_note(f"Raised in the forked child of {what}:\n{told}")
    return exc


class Threaded(Generic[T]):
    """A call running in a daemon thread: `result()` waits for it. A caller that leaves without
    waiting abandons it: it runs to its end unless the process exits first (a daemon thread does
    not hold the process)."""

    def __init__(self, work: Callable[[], T], *, name: str):
        self._value: Any = None
        self._raised: BaseException | None = None
        context = contextvars.copy_context()  # the caller's context variables go along

        def run() -> None:
            try:
                self._value = context.run(work)
            except BaseException as exc:  # noqa: BLE001 - raised by result(), in the caller
                self._raised = exc

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()

    def result(self) -> T:
        self._thread.join()
        if self._raised is not None:
            raise self._raised
        return self._value  # type: ignore[no-any-return]


def in_thread(work: Callable[[], T], *, name: str) -> Threaded[T]:
    """`work()` started in a daemon thread (see Threaded)."""
    return Threaded(work, name=name)
