"""A running server follows its alias: the version `champion` moves to is loaded beside the one
serving, then takes its place in one reference swap, if the gate passed it.

Each request reads the serving reference once and is answered by that model from start to end
(its `X-Model-Version` header says which), so a switch fails no request. The alias is polled,
not watched through MLflow's registry webhooks: only a tracking server sends them (never a sqlite
store), by default never to a plain-http or private address, and at best effort
(docs/serving.md, "Following the champion").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException

from ml_project import gate
from ml_project.errors import ProjectError
from ml_project.loading import ModelTarget
from ml_project.tracking import redact, retry_locked
from ml_project.vocabulary import PROBLEM, run_of, status_of

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# A version that failed to load is tried again after this long, then twice as long each time.
RETRY_SECONDS = 30.0
MAX_RETRY_SECONDS = 1800.0
NAME_HEADER, VERSION_HEADER = b"x-model-name", b"x-model-version"
# What the registry answers for an alias that names no version (or a model that is gone).
NO_SUCH_ALIAS = ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")


@dataclass(frozen=True)
class Live:
    """A loaded model's scoring app and the registry version it serves ('' for a folder)."""

    app: ASGIApp
    name: str
    version: str

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        if not self.version:
            return []
        return [(NAME_HEADER, self.name.encode()), (VERSION_HEADER, self.version.encode())]


class SwitchingApp:
    """The ASGI app uvicorn runs: each request goes whole to the Live current when it arrives,
    and its response names that Live's version; `swap` replaces the reference for the next."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def swap(self, live: Live) -> None:
        self.live = live  # one reference: a request sees the old model or the new, never a mix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        live = self.live
        if scope["type"] != "http":
            await live.app(scope, receive, send)
            return

        async def send_naming_the_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *live.headers]}
            await send(message)

        await live.app(scope, receive, send_naming_the_version)


class Follower:
    """Every `interval` seconds, reads where `alias` of `name` points; a version other than the
    one serving is loaded (`load`) and swapped in when its verdict is `passed` and it is a model
    of `problem`, and only if the alias still names it once loaded. Anything else keeps the
    model serving and is said once on stderr."""

    def __init__(
        self,
        client: MlflowClient,
        switching: SwitchingApp,
        load: Callable[[str], Live],
        *,
        alias: str,
        problem: str,
        interval: float,
        swapped: Callable[[], None] = lambda: None,
    ) -> None:
        self.client, self.switching, self.load = client, switching, load
        self.alias, self.problem, self.interval = alias, problem, interval
        self.swapped = swapped  # after each swap (serving: the heap frozen again)
        self.name = switching.live.name
        self._said: set[str] = set()
        self._retry: dict[str, tuple[float, float]] = {}  # version -> (when, delay)

    def start(self) -> None:
        threading.Thread(target=self._follow, name="ml-project-follower", daemon=True).start()

    def _follow(self) -> None:
        while True:  # a daemon thread: it ends with the server's process
            time.sleep(self.interval)
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - whatever a poll meets, the model keeps serving
                self._say_once("poll", f"checking @{self.alias} failed ({_text(exc)})")

    def poll(self) -> None:
        """One look at the alias, and the switch if it names a version to serve."""
        found = self._read()
        serving = self.switching.live.version
        if found is None or str(found.version) == serving:
            return
        version = str(found.version)
        refused = self._refusal(found)
        if refused:
            self._say_once(
                f"refused {version} {refused}", f"{self._moved(version)}, which {refused}"
            )
            return
        when, _ = self._retry.get(version, (0.0, 0.0))
        if time.monotonic() < when:
            return
        try:
            live = self.load(version)
        except Exception as exc:  # noqa: BLE001 - a model that does not load must not stop serving
            self._failed(version, exc)
            return
        again = self._read()
        if again is None or str(again.version) != version or self._refusal(again):
            logger.info("@%s moved while version %s loaded: not switched", self.alias, version)
            return
        self.switching.swap(live)
        del live  # the model switched out is now unreachable: `swapped` lets the GC free it
        self.swapped()
        self._retry.pop(version, None)
        logger.info(
            "ml-project serve: now serving version %s of %s (was %s): @%s moved to it.",
            version, self.name, serving, self.alias,
        )  # fmt: skip

    def _read(self) -> ModelVersion | None:
        """The version the alias names now; None (said once) when it names none or the
        registry does not answer."""
        try:
            found = retry_locked(self.client.get_model_version_by_alias, self.name, self.alias)
        except MlflowException as exc:
            if exc.error_code in NO_SUCH_ALIAS:
                self._say_once("gone", f"{self.name} has no @{self.alias} now")
            else:
                self._say_once("unread", f"@{self.alias} of {self.name} cannot be read ({exc})")
            return None
        self._said -= {"gone", "unread", "poll"}  # a later outage is said again
        return found

    def _refusal(self, found: ModelVersion) -> str:
        """Why `found` must not be served without a restart ('' when it may)."""
        tags = dict(found.tags or {})
        status = status_of(tags)
        if status != gate.PASSED:
            return (
                f"has validation_status={status}: a running server switches only to a version the "
                "gate passed (restart it to serve this one anyway)"
            )
        target = ModelTarget(
            "", self.name, str(found.version), run_of(tags, found.run_id) or "", tags
        )
        problem = target.tag(self.client, PROBLEM) or self.problem
        if problem != self.problem:
            return f"is a model of problem {problem}, and this server serves {self.problem}"
        return ""

    def _failed(self, version: str, exc: Exception) -> None:
        _, delay = self._retry.get(version, (0.0, RETRY_SECONDS / 2))
        delay = min(delay * 2, MAX_RETRY_SECONDS)
        self._retry[version] = (time.monotonic() + delay, delay)
        self._say_once(
            f"load {version}",
            f"{self._moved(version)}, which could not be loaded ({_text(exc)}); tried again in "
            f"{delay:.0f} s, then less often",
        )

    def _moved(self, version: str) -> str:
        return f"@{self.alias} of {self.name} moved to version {version}"

    def _say_once(self, key: str, what: str) -> None:
        if key in self._said:
            return
        self._said.add(key)
        serving = self.switching.live.version
        logger.warning("ml-project serve: %s; still serving version %s.", redact(what), serving)


def _text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ProjectError) else f"{type(exc).__name__}: {exc}"
