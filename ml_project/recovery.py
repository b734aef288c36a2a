"""What a stopped process left behind: versions without a verdict, runs left RUNNING.

A run records who runs it (tracking.process_tags: host and pid) and renews a heartbeat while it
runs (heartbeat.py); a later training or `ml-project settle` asks whether that process still
lives, and settles what a dead one left (`settle_orphans`). Only a run known to be gone (MLflow's
RESOURCE_DOES_NOT_EXIST, a deleted run, an ended run, a dead process on this machine, a heartbeat
silent for ten minutes) is settled: a store that fails to answer says nothing, and nothing
destructive is done on it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException

from ml_project import gate, heartbeat, registry, tracking
from ml_project.errors import StoreError, TrainingFailedError
from ml_project.registry import Move
from ml_project.vocabulary import (
    CHALLENGER,
    COPIED_BY_RUN,
    HEARTBEAT,
    HOST,
    LOGGED_MODEL_URI,
    PENDING,
    PID,
    SETTLED,
    VALIDATION_REASONS,
    VALIDATION_STATUS,
    process_of,
    run_of,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion


class Gone(Exception):
    """The run is known not to exist any more (deleted, or unknown to the store)."""


def process_alive(host: str, pid: str) -> bool | None:
    """Whether process `pid` of `host` still runs; None when that cannot be told from here."""
    if not host or not pid.isdigit() or host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_gone(run: Run) -> bool:
    """Whether the process its tags name is known to be gone: dead on this machine, or, run
    elsewhere, silent past its heartbeat's limit."""
    tags = run.data.tags
    process = process_of(tags)
    alive = None if process is None else process_alive(process[0], str(process[1]))
    if alive is not None:
        return not alive
    return heartbeat.stale(tags) is True


def why_gone(run: Run) -> str:
    """How `process_gone` knew, in words."""
    tags = run.data.tags
    host, pid = tags.get(HOST, ""), tags.get(PID, "")
    if host == socket.gethostname() or heartbeat.stale(tags) is None:
        return f"its process {pid} on {host} is gone"
    silent = (time.time() - int(tags[HEARTBEAT])) / 60
    return f"its process {pid} on {host} has been silent for {silent:.0f} minutes"


def fetch_run(client: MlflowClient, run_id: str) -> Run | None:
    """The run; Gone when the store says it does not exist (or it was deleted); None when the
    store could not answer (unknown: the caller does nothing destructive)."""
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise Gone(run_id) from exc
        return None
    except Exception:  # noqa: BLE001 - a timeout, a refused connection: unknown
        return None
    if run.info.lifecycle_stage == "deleted":
        raise Gone(run_id)
    return run


def version_run(version: ModelVersion) -> str | None:
    """The run that owns a version's verdict: a copy's promote run, else its training run."""
    tags = version.tags
    return tags.get(COPIED_BY_RUN) or run_of(tags, version.run_id)


def orphan_reason(client: MlflowClient, version: ModelVersion) -> str | None:
    """Why `version` will never get a verdict (its run is gone or ended, or its process is
    gone), or None when it has one, is still being judged, or that cannot be told."""
    if version.tags.get(VALIDATION_STATUS) not in (None, "", PENDING):
        return None
    run_id = version_run(version)
    source = str(version.source or "")
    # a copy (copy_model_version: models:/NAME/N) not tagged yet; a training registers its
    # logged model (models:/m-<id>), which is no copy
    copying = source.startswith("models:/") and not LOGGED_MODEL_URI.match(source)
    if not run_id or (copying and not version.tags.get(COPIED_BY_RUN)):
        return None  # a copy being set up: its run is not known yet
    try:
        run = fetch_run(client, run_id)
    except Gone:
        return f"its run {run_id} is gone"
    if run is None:
        return None
    if run.info.status != "RUNNING":
        return f"its run {run_id} ended {run.info.status} before a verdict"
    if process_gone(run):
        return f"its run {run_id} is RUNNING but {why_gone(run)}"
    return None


def running(client: MlflowClient, run_id: str, *, process_too: bool = True) -> bool | None:
    """Whether run `run_id` is RUNNING (with `process_too`: and its process not known to be
    gone); None when the store could not answer."""
    try:
        run = fetch_run(client, run_id)
    except Gone:
        return False
    if run is None:
        return None
    return run.info.status == "RUNNING" and not (process_too and process_gone(run))


def orphans(client: MlflowClient, name: str, *, strict: bool = False) -> dict[str, str]:
    """{version: why} for the versions of `name` left without a verdict by a stopped run;
    `strict`: a registry that cannot be searched raises (else: nothing known, nothing done)."""
    try:
        found = tracking.retry_locked(client.search_model_versions, f"name='{name}'")
    except MlflowException:
        if strict:
            raise
        return {}
    reasons = {str(version.version): orphan_reason(client, version) for version in found}
    return {version: reason for version, reason in reasons.items() if reason}


def dead_runs(client: MlflowClient, experiment: str) -> dict[str, str]:
    """{run id: why} for the runs of `experiment` still RUNNING whose process is known to be
    gone (killed before it registered anything: no version points at them)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    out = {}
    for run in client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'"):
        if process_gone(run):
            out[run.info.run_id] = why_gone(run)
    return out


def settle_orphans(
    client: MlflowClient,
    name: str,
    *,
    experiment: str | None = None,
    by: str = "a later training",
    strict: bool = False,
) -> list[str]:
    """Each version a stopped run left without a verdict is tagged failed with the reason (and
    who settled it, `by`), loses `challenger`, and its run (if still RUNNING) ends KILLED; so
    does each run of `experiment` left RUNNING by a process that is gone."""
    settled = []
    found = orphans(client, name, strict=strict)
    for version, reason in sorted(found.items(), key=lambda item: int(item[0])):
        why = f"no verdict: {reason} (settled by {by})"
        current = registry.get_version(client, name, version)
        if current.tags.get(VALIDATION_STATUS) not in (None, "", PENDING):
            continue  # judged since it was read: its job was alive after all
        run_id = version_run(current)
        registry.set_version_tags(
            client,
            name,
            version,
            {VALIDATION_STATUS: gate.FAILED, VALIDATION_REASONS: why, SETTLED: why},
        )
        registry.remove_alias_if(client, name, CHALLENGER, version, move=Move("verdict", why))
        if run_id and running(client, run_id, process_too=False):
            client.set_terminated(run_id, status="KILLED")
        settled.append(f"version {version}: {reason}")
    settled += _clear_stale_challenger(client, name)
    for run_id, reason in dead_runs(client, experiment).items() if experiment else ():
        client.set_tag(run_id, SETTLED, f"ended KILLED by {by}: {reason}")
        client.set_terminated(run_id, status="KILLED")
        settled.append(f"run {run_id}: RUNNING, but {reason}; ended KILLED")
    return settled


def _clear_stale_challenger(client: MlflowClient, name: str) -> list[str]:
    """A version judged, but whose run stopped before it let go of `challenger`, loses it."""
    stale = registry.alias_version(client, name, CHALLENGER)
    if stale is None:
        return []
    found = registry.get_version(client, name, stale)
    verdict = found.tags.get(VALIDATION_STATUS)
    run_id = version_run(found)
    if verdict not in (gate.PASSED, gate.FAILED) or not run_id:
        return []
    if running(client, run_id) is not False:  # may still be working (or cannot be told)
        return []
    why = f"its run {run_id} stopped after the verdict ({verdict})"
    registry.remove_alias_if(client, name, CHALLENGER, stale, move=Move("verdict", why))
    return [f"version {stale}: challenger cleared, {why}"]


@dataclass(frozen=True)
class Settled:
    """What `ml-project settle` ended in an env: one line per version or run."""

    env: str
    model_name: str
    settled: tuple[str, ...]


def settle_env(client: MlflowClient, *, env: str, name: str, experiment: str) -> Settled:
    """`ml-project settle`: what stopped jobs left in the env's registry and experiment, settled
    now rather than by the env's next training."""
    try:
        found = settle_orphans(
            client, name, experiment=experiment, by="ml-project settle", strict=True
        )
    except MlflowException as exc:
        raise StoreError(tracking.store_failure(client.tracking_uri, exc)) from exc
    return Settled(env=env, model_name=name, settled=tuple(found))


def require_unsettled(client: MlflowClient, name: str, version: str) -> None:
    """TrainingFailedError when `version` was settled (`settle_orphans`) while its own job,
    still alive after all (a store or network outage silenced its heartbeat), was judging it:
    the job must not judge, tag or crown a version the env has already failed."""
    found = registry.get_version(client, name, version)
    if SETTLED not in (found.tags or {}):
        return
    raise TrainingFailedError(
        f"Version {version} of {name} was settled while this job was judging it ("
        f"{found.tags[SETTLED]}): its heartbeat had not reached the store for "
        f"{heartbeat.STALE_AFTER_S // 60} minutes, so it was taken for dead. The version stays "
        "failed with no alias and is not judged or promoted; the champion is unchanged. Train "
        "again once the store is reachable."
    )
