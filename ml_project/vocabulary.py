"""The words train, gate, show, reproduce, predict and monitor share: tag keys, aliases, tasks.

One constant per tag a command writes and another reads, and the small typed readers over them,
so no module spells a tag key as a literal (docs/lineage.md lists what each one records).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)

# Aliases: `challenger` while the gate judges a version, `champion` once it serves.
CHAMPION = "champion"
CHALLENGER = "challenger"

# A version's verdict (gate.PASSED / gate.FAILED, "pending" while judged; "none" when absent).
VALIDATION_STATUS = "validation_status"
VALIDATION_REASONS = "validation_reasons"
PENDING = "pending"
ORPHANED = "orphaned"

# Which run made a version, and which version a run made.
RUN_ID = "run_id"
MODEL_VERSION = "model_version"
COPIED_BY_RUN = "copied_by.run_id"
COPIED_FROM = "copied_from."

# Lineage (run tags; the few a reviewer reads are copied onto the version: VERSION_LINEAGE).
GIT_COMMIT = "git.commit"
GIT_DIRTY = "git.dirty"
GIT_TAG = "git.tag"
GIT_BRANCH = "git.branch"
DATA_DIGEST = "data.digest"
DATA_TABLES = "data.tables"
CONFIG_HASH = "config.hash"
SEED = "seed"
PREDICTIONS_DIGEST = "predictions.digest"
SPLIT_KIND = "split.kind"
SPLIT_TIME_COLUMN = "split.time_column"
SPLIT_CUTOFF = "split.cutoff"
EVALUATION_SKIPPED = "evaluation.skipped"
# sha256 of the files a loader reads (MLmodel, the skops file), as uploaded: "NAME=HEX;..."
MODEL_FILES = "model.files_sha256"
# sha256 of the skops file's content, free of the ids and times each save changes
# (model_digest.py): equal for two identical retrains, compared by `reproduce`
MODEL_CONTENT = "model.content_sha256"
# An MLflow 3 logged model's URI (models:/m-<hex id>[/path]), not a registered model's name
LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]+)(?:/.*)?$")
VERSION_LINEAGE = (GIT_COMMIT, GIT_DIRTY, GIT_TAG, DATA_DIGEST, CONFIG_HASH, SEED, MODEL_FILES)

# The project's own run tags.
TASK = "ml_project.task"
PROBLEM = "ml_project.problem"
ENV = "ml_project.env"
HOST = "ml_project.host"
PID = "ml_project.pid"
HEARTBEAT = "ml_project.heartbeat"  # renewed while the job runs (heartbeat.py)
RUN_TYPE = "ml_project.run_type"
COMMAND = "ml_project.command"
ACTION = "ml_project.action"
REASON = "ml_project.reason"
FAILURE = "ml_project.failure"
SETTLED = "ml_project.settled"
ALLOW_DIRTY = "ml_project.allow_dirty"
REBUILD_PROTOCOL = "ml_project.rebuild_protocol"


def run_of(tags: Mapping[str, str], default: str | None = None) -> str | None:
    """The run that trained a version: its `run_id` tag (a promote-copy's points back to the
    original training), else `default` (the version's own `run_id` field)."""
    return tags.get(RUN_ID) or default


def status_of(tags: Mapping[str, str]) -> str:
    """A version's gate verdict as its tags record it ("none" when never judged)."""
    return tags.get(VALIDATION_STATUS) or "none"


def process_of(tags: Mapping[str, str]) -> tuple[str, int] | None:
    """The (host, pid) that runs a run, None when its tags do not say (or say it badly)."""
    host, pid = tags.get(HOST), tags.get(PID, "")
    return (host, int(pid)) if host and pid.isdigit() else None


@dataclass(frozen=True, kw_only=True)
class Lineage:
    """Where a model came from, as its run's tags say (None: not recorded): what a model card
    and a training summary show."""

    commit: str | None
    dirty: bool
    git_tag: str | None
    branch: str | None
    seed: str | None
    config_hash: str | None
    data_digest: str | None
    split_kind: str | None  # "time" (the newest rows by split_column, from split_cutoff), "hash"
    split_column: str | None
    split_cutoff: str | None


def lineage_of(tags: Mapping[str, str]) -> Lineage:
    return Lineage(
        commit=tags.get(GIT_COMMIT),
        dirty=tags.get(GIT_DIRTY) == "true",
        git_tag=tags.get(GIT_TAG),
        branch=tags.get(GIT_BRANCH),
        seed=tags.get(SEED),
        config_hash=tags.get(CONFIG_HASH),
        data_digest=tags.get(DATA_DIGEST),
        split_kind=tags.get(SPLIT_KIND),
        split_column=tags.get(SPLIT_TIME_COLUMN),
        split_cutoff=tags.get(SPLIT_CUTOFF),
    )


# --- what training writes and reproduce reads back ---------------------------------------------
FEATURES_DIGEST = "features.digest"

# --- data validation's run tags (validation.run_tags writes them, tracking reads) ---------------
VALIDATION_SUCCESS = "validation.success"
VALIDATION_FAILED_TABLES = "validation.failed_tables"
VALIDATION_SUITES_DIGEST = "validation.suites_digest"
VERDICT_KEY, VERDICT_EVALUATED, VERDICT_REUSED_FROM = "key", "evaluated", "reused_from"


def suite_tag(table: str, what: str) -> str:
    """A table's own validation tag, `validation.<table>.<what>` (what: a VERDICT_* word)."""
    return f"validation.{table}.{what}"


# --- a monitoring run's tags (the model it watched, its verdict) and its version's ------------
MODEL_URI = "model.uri"
MODEL_NAME = "model.name"
MODEL_VERSION_TAG = "model.version"
MODEL_RUN_ID = "model.run_id"
MONITOR_STATUS = "monitor.status"
MONITOR_INPUT = "monitor.input"
MONITOR_LABELS = "monitor.labels"
MONITOR_QUALITY_METRIC = "monitor.quality_metric"
MONITOR_REASONS = "monitor.reasons"
MONITOR_LAST_RUN_ID = "monitor.last_run_id"  # on the version: its latest monitoring run
MONITOR_LAST_STATUS = "monitor.last_status"
