"""Known failures, each with the exit code the CLI returns for it (docs/exit-codes.md)."""

from typing import Any


class ProjectError(Exception):
    """A failure the CLI reports as one paragraph (`label: message`), without a traceback.

    A subclass names its exit code and label in its header:
    `class DataError(ProjectError, exit_code=3, label="data error")`. `result` is what the
    command produced all the same (a GateFailedError's run, version and verdict), which the CLI
    prints before it exits.
    """

    exit_code = 1
    label = "error"

    def __init__(self, message: str = "", *, result: Any = None):
        super().__init__(message)
        self.result = result

    def __init_subclass__(cls, *, exit_code: int, label: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.exit_code, cls.label = exit_code, label


class ConfigError(ProjectError, exit_code=2, label="configuration error"):
    """Bad usage or configuration: unknown env, malformed YAML, wrong key or type."""


class DataError(ProjectError, exit_code=3, label="data error"):
    """Input data is unreadable or fails its expectations."""


class DirtyTreeError(ProjectError, exit_code=4, label="dirty work tree"):
    """The git work tree has uncommitted changes where the env requires a clean one."""


class GateFailedError(ProjectError, exit_code=5, label="quality gate failed"):
    """The candidate model did not pass the quality gate; it keeps no serving alias."""


class NotReproducedError(ProjectError, exit_code=6, label="not reproduced"):
    """A rebuilt model, its data or its features differ from what was recorded."""


class DriftDetectedError(ProjectError, exit_code=7, label="drift detected"):
    """A scored batch drifted beyond the env's thresholds."""


class RegistryError(ProjectError, exit_code=8, label="registry error"):
    """The model registry does not hold what was asked for (model, version, alias, lineage)."""


class StoreError(ProjectError, exit_code=9, label="tracking store error"):
    """The tracking store or registry cannot be reached, read or written."""


class TrainingFailedError(ProjectError, exit_code=10, label="training failed"):
    """A training failed after its run started; the run ended FAILED, nothing kept an alias."""


class SetupError(ProjectError, exit_code=11, label="environment error"):
    """The machine lacks what a command needs (a package, a Java runtime, disk space)."""


# The signals that stop a command cleanly: Ctrl-C, `kill`, a closed terminal or SSH session.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):
    """A STOP_SIGNALS signal: the command stops; its run ends KILLED (128 + the signal's number)."""

    label = "interrupted"

    def __init__(self, signal_name: str = "SIGINT", signal_number: int = 2):
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.exit_code = 128 + signal_number


RECEIVED: list[Interrupted] = []  # the stop signal this process was sent, if any


def received_stop() -> Interrupted | None:
    """The interruption this process was sent, even when unwinding from it raised another
    exception (a file closed under it, say): that exception is its consequence, not the cause."""
    return RECEIVED[0] if RECEIVED else None
