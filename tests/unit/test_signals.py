"""SIGINT/SIGTERM in the CLI: raised at once, except inside a store transaction, where the
signal waits until the transaction is over (an exception between a write and its commit would
leave the sqlite database locked for the cleanup)."""

import signal
import types

import pytest

from ml_project import cli, errors, pipeline
from ml_project.errors import Interrupted


def frame_in(module: str):
    """A stand-in for a stack frame running code of `module` (no caller)."""
    return types.SimpleNamespace(f_globals={"__name__": module}, f_back=None)


@pytest.fixture
def restore_signals():
    saved = signal.getsignal(signal.SIGALRM)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, saved)
    cli._PENDING.clear()
    errors.RECEIVED.clear()  # the handler records what it raised: no later test may inherit it


def test_outside_the_store_the_signal_interrupts_at_once(restore_signals):
    with pytest.raises(Interrupted) as raised:
        cli.on_signal(signal.SIGTERM, frame_in("ml_project.pipeline"))
    assert raised.value.exit_code == 143


def test_inside_a_store_transaction_it_waits_then_interrupts(restore_signals):
    inner = frame_in("sqlalchemy.engine.base")
    inner.f_back = frame_in("ml_project.pipeline")
    assert cli.on_signal(signal.SIGINT, inner) is None  # deferred, not raised
    assert cli._PENDING == [signal.SIGINT]
    assert signal.getitimer(signal.ITIMER_REAL)[0] > 0  # checked again shortly
    signal.setitimer(signal.ITIMER_REAL, 0)
    assert cli.on_signal(signal.SIGALRM, inner) is None  # still inside: waits again
    with pytest.raises(Interrupted) as raised:
        cli.on_signal(signal.SIGALRM, frame_in("ml_project.pipeline"))
    assert raised.value.exit_code == 130 and cli._PENDING == []
    assert cli.on_signal(signal.SIGALRM, frame_in("ml_project.pipeline")) is None  # no pending


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_stop_whose_raise_was_lost_stops_the_next_stage(restore_signals):
    """A signal raised inside a finalizer or a garbage-collection callback is printed and dropped
    by Python; its record (errors.RECEIVED) still stops the training before its next stage, so
    a stopped training never goes on to register."""
    timer = pipeline.StageTimer()
    with timer.stage("reading"):
        pass  # no stop yet: stages run
    stop = Interrupted("SIGINT", signal.SIGINT)
    errors.RECEIVED.append(stop)  # as on_signal records it before raising

    class Lost:
        def __del__(self):
            raise errors.received_stop()  # the handler's raise, inside a finalizer

    Lost()  # Python prints "Exception ignored" and goes on
    with pytest.raises(Interrupted) as raised, timer.stage("registration"):
        raise AssertionError("the registration stage started after a stop")
    assert raised.value is stop
    assert "registration" not in timer.seconds
