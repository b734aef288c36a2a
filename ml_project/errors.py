"""Known failures, each with the exit code the CLI returns for it (docs/exit-codes.md)."""

from typing import Any


class ProjectError(Exception):
    """A failure the CLI reports as one paragraph, without a traceback."""

    exit_code = 1
    label = "error"


class ConfigError(ProjectError):
    """Bad usage or configuration: unknown env, malformed YAML, wrong key or type."""

    exit_code = 2
    label = "configuration error"


class DataError(ProjectError):
    """Input data is unreadable or fails its expectations."""

    exit_code = 3
    label = "data error"


class DirtyTreeError(ProjectError):
    """The git work tree has uncommitted changes where the env requires a clean one."""

    exit_code = 4
    label = "dirty work tree"


class GateFailedError(ProjectError):
    """The candidate model did not pass the quality gate; it keeps no serving alias.

    `result` holds what the command produced all the same (run, version, verdict), so the CLI
    can still print its summary and `--json` before exiting with the gate's code.
    """

    exit_code = 5
    label = "quality gate failed"

    def __init__(self, message: str, *, result: Any = None):
        super().__init__(message)
        self.result = result


class NotReproducedError(ProjectError):
    """A rebuilt model, its data or its features differ from what was recorded."""

    exit_code = 6
    label = "not reproduced"


class DriftDetectedError(ProjectError):
    """A scored batch drifted beyond the env's thresholds."""

    exit_code = 7
    label = "drift detected"


class RegistryError(ProjectError):
    """The model registry does not hold what was asked for (model, version, alias, lineage)."""

    exit_code = 8
    label = "registry error"


class TrainingFailedError(ProjectError):
    """A training failed after its run started; the run ended FAILED, nothing kept an alias."""

    exit_code = 10
    label = "training failed"


class StoreError(ProjectError):
    """The tracking store or registry cannot be reached, read or written."""

    exit_code = 9
    label = "tracking store error"


class SetupError(ProjectError):
    """The machine lacks what a command needs (a package, a Java runtime, disk space)."""

    exit_code = 11
    label = "environment error"


# The signals that stop a command cleanly: Ctrl-C, `kill`, a closed terminal or SSH session.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class Interrupted(KeyboardInterrupt):  # noqa: N818 - a BaseException, as KeyboardInterrupt is
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
