"""A run's life, in one place: started with its tags, ended with its verdict, or abandoned.

`training_run` starts an MLflow run (with who runs it: tracking.process_tags, and a heartbeat
renewed while it runs: heartbeat.py) and yields a `RunLife` the job fills in (the version it
registered, the verdict). On a normal exit the
verdict is tagged and the run ends FINISHED; on any exception, or a stop signal, the job is
abandoned: its version (if registered, not judged) is tagged failed and loses `challenger`, and
the run ends FAILED (KILLED when interrupted).
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mlflow

from ml_project import errors, gate, heartbeat, registry, tracking
from ml_project.errors import STOP_SIGNALS, ProjectError, StoreError, TrainingFailedError
from ml_project.registry import Move
from ml_project.settings import Settings
from ml_project.vocabulary import (
    CHALLENGER,
    FAILURE,
    MODEL_VERSION,
    VALIDATION_REASONS,
    VALIDATION_STATUS,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

REASON_CHARACTERS = 1000  # of a failure's message in tags and the history (failure/traceback.txt)


@dataclass
class RunLife:
    """What a running job has done so far: its run, the version it registered, its verdict."""

    run_id: str
    version: str | None = None
    verdict: str | None = None


@contextmanager
def training_run(
    client: MlflowClient,
    settings: Settings,
    *,
    experiment_id: str,
    run_name: str,
    tags: dict[str, str],
    commit: str,
    explain: bool = True,
) -> Iterator[RunLife]:
    """The run of a job that registers and judges a version (see the module's docstring).

    `explain`: an unexpected error becomes a TrainingFailedError (a StoreError gains) saying
    what the stopped job left in the store; without, the error is raised as it is.
    """
    run = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags={**tags, **tracking.process_tags(), **heartbeat.beat()},
    )
    life = RunLife(run.info.run_id)
    try:
        with heartbeat.beating(client, life.run_id):
            yield life
        if life.verdict is not None:
            mlflow.set_tags({VALIDATION_STATUS: life.verdict, MODEL_VERSION: life.version or ""})
    except BaseException as raised:
        stop = errors.received_stop()
        exc = stop if stop is not None and not isinstance(raised, KeyboardInterrupt) else raised
        recorded = abandon(client, settings, life.version, life.run_id, exc, commit=commit)
        if exc is not raised:
            raise exc from raised
        told = explained(exc, settings, life, recorded=recorded) if explain else exc
        if told is exc:
            raise
        raise told from exc
    mlflow.end_run()


def explained(
    exc: BaseException, settings: Settings, life: RunLife, *, recorded: bool
) -> BaseException:
    """The error a training that stopped after its run started ends with."""
    left = left_behind(settings, life.version, recorded=recorded)
    if isinstance(exc, StoreError):  # what the failed store left, said by the training
        return StoreError(f"{exc} The run {life.run_id} had started: {left}")
    if isinstance(exc, ProjectError | KeyboardInterrupt):
        return exc
    return TrainingFailedError(
        f"Training stopped after its run {life.run_id} started: {failure_reason(exc)}. {left}"
    )


def left_behind(settings: Settings, version: str | None, *, recorded: bool) -> str:
    """What a training stopped after its run started left in the store (`recorded`: whether
    `abandon` could write its cleanup)."""
    if recorded:
        return (
            "The run ended FAILED (its traceback is the run's artifact failure/traceback.txt if "
            "the artifact store took it); "
        ) + (
            f"version {version} of {settings.model_name} is tagged validation_status=failed and "
            "holds no alias."
            if version
            else "nothing was registered."
        )
    settle = f"`ml-project settle --env {settings.env}` (or the env's next training) ends the run"
    if version:
        return (
            f"The store could not record the failure either, so the run may still read RUNNING, "
            f"with version {version} of {settings.model_name} without a verdict (it never "
            f"serves; `ml-project show --env {settings.env}` names it). Once the store takes "
            f"writes again, {settle} and tags the version failed."
        )
    return (
        "The store could not record the failure either, so the run may still read RUNNING; "
        f"nothing was registered. Once the store takes writes again, {settle}."
    )


def failure_reason(exc: BaseException) -> str:
    """What stopped a command, in one line without credentials."""
    if isinstance(exc, KeyboardInterrupt):
        return f"interrupted ({getattr(exc, 'signal_name', 'SIGINT')})"
    text = tracking.plain_error(exc)
    if len(text) > REASON_CHARACTERS:  # cut between words, and said: the traceback has it all
        text = text[:REASON_CHARACTERS].rsplit(" ", 1)[0] + " [...]"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def abandon(
    client: MlflowClient,
    settings: Settings,
    version: str | None,
    run_id: str,
    exc: BaseException,
    *,
    commit: str,
) -> bool:
    """A job stopped after its run started: the version it registered (if any, and if not
    judged yet) is tagged failed with the reason and loses `challenger`; the run ends FAILED
    (KILLED when interrupted). Best effort, as the store may be what failed: False when some of
    it could not be written (the next training settles what is left)."""
    reason = f"training did not finish: {failure_reason(exc)}"
    saved = {}
    recorded = False
    try:  # a second Ctrl-C must not cut the cleanup short
        for signal_name in STOP_SIGNALS:
            saved[signal_name] = signal.signal(getattr(signal, signal_name), signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass
    try:
        recorded = _record_failure(client, settings, version, run_id, exc, reason, commit)
    finally:
        try:
            mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception:  # noqa: BLE001 - a later command settles a run left RUNNING
            recorded = False
        for signal_name, handler in saved.items():
            signal.signal(getattr(signal, signal_name), handler)
    return recorded


def _record_failure(
    client: MlflowClient,
    settings: Settings,
    version: str | None,
    run_id: str,
    exc: BaseException,
    reason: str,
    commit: str,
) -> bool:
    """`abandon`'s writes before the run ends: the version's verdict and alias, the run's tag
    and traceback. False when the store refused them (the traceback artifact is optional)."""
    try:
        if version is not None:
            name = settings.model_name
            found = registry.get_version(client, name, version)
            if found.tags.get(VALIDATION_STATUS) not in (gate.PASSED, gate.FAILED):
                failed = {VALIDATION_STATUS: gate.FAILED, VALIDATION_REASONS: reason}
                registry.set_version_tags(client, name, version, failed)
            registry.remove_alias_if(
                client, name, CHALLENGER, version, move=Move("verdict", reason, commit, run_id)
            )
        mlflow.set_tag(FAILURE, reason)
    except Exception:  # noqa: BLE001 - the original error is what the user must see
        return False
    with contextlib.suppress(Exception):  # the artifact store may be what failed: optional
        mlflow.log_text("".join(traceback.format_exception(exc)), "failure/traceback.txt")
    return True
