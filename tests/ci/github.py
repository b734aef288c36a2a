"""GitHub Actions as far as a test can play it: a workflow's jobs for one event, in order.

What runs: each job whose `if:` holds (GitHub's expression language, the subset the workflows
use), each matrix leg, each step's `run:` in bash -eo pipefail with GitHub's variables
(GITHUB_EVENT_NAME, GITHUB_REF, GITHUB_REF_NAME, GITHUB_REF_TYPE, GITHUB_HEAD_REF, GITHUB_SHA,
GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, CI...), the workflow's, job's and step's `env:`, the
secrets (an environment's over the repository's, as GitHub gives them; none to a fork), step
and job outputs, `continue-on-error`. Of the `uses:` steps three are played because what
follows depends on them: actions/checkout (fetch, check out the ref, clean unless `clean:
false`), actions/upload-artifact and actions/download-artifact (files kept per run); every other
one (setup-python, cache, setup-java) is skipped and named in the job's record. `make` runs the
tools already installed (SKIP_INSTALL=1), as tests/ci/workflows.run_make does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.ci.workflows import MAKE_INPUTS

# Jobs a test does not run: CI runs them itself on every push (lint, the test suites); their
# `if:` is evaluated, and when it holds they count as passed.
NOT_RUN = {"checks": "lint and the fast tests", "integration": "the integration tests"}
PLAYED = ("actions/checkout@", "actions/upload-artifact@", "actions/download-artifact@")
TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||[!(),])|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-*]+)*))"
)
STATUS_FUNCTIONS = ("success(", "failure(", "always(", "cancelled(")


# --- expressions ------------------------------------------------------------------------------


def truthy(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value not in (None, False, 0, "")


def as_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    try:
        return float(value.strip() or 0)
    except (ValueError, AttributeError):
        return math.nan


def equal(left: Any, right: Any) -> bool:
    """GitHub's loose equality: strings case-insensitively, other mixes as numbers."""
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    return as_number(left) == as_number(right)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Expression:
    """One expression evaluated in `context` (dicts), `functions` callables by lower name."""

    def __init__(self, text: str, context: dict, functions: dict):
        self.tokens = [
            (match.lastgroup, match.group(match.lastgroup))
            for match in TOKEN.finditer(text.strip())
        ]
        consumed = "".join(match.group(0) for match in TOKEN.finditer(text.strip()))
        assert consumed.replace(" ", "") == text.strip().replace(" ", ""), f"cannot read {text!r}"
        self.position, self.context, self.functions = 0, context, functions

    def value(self) -> Any:
        result = self.either()
        assert self.position == len(self.tokens), f"unread tokens in {self.tokens}"
        return result

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str | None, str]:
        self.position += 1
        return self.tokens[self.position - 1]

    def either(self) -> Any:
        left = self.both()
        while self.peek() == "||":
            self.take()
            right = self.both()
            left = left if truthy(left) else right
        return left

    def both(self) -> Any:
        left = self.comparison()
        while self.peek() == "&&":
            self.take()
            right = self.comparison()
            left = right if truthy(left) else left
        return left

    def comparison(self) -> Any:
        left = self.unary()
        if self.peek() in ("==", "!="):
            operator = self.take()[1]
            return equal(left, self.unary()) == (operator == "==")
        return left

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self) -> Any:
        kind, text = self.take()
        if text == "(":
            inner = self.either()
            assert self.take()[1] == ")"
            return inner
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self.peek() == "(":
            self.take()
            arguments = []
            while self.peek() != ")":
                arguments.append(self.either())
                if self.peek() == ",":
                    self.take()
            self.take()
            return self.functions[text.lower()](*arguments)
        value: Any = self.context
        for part in text.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value


def evaluate(text: str, context: dict, functions: dict) -> Any:
    """An `if:` (with or without ${{ }}) or a value: one whole template keeps its type, a
    string holding templates gets each replaced by its text."""
    stripped = text.strip()
    whole = TEMPLATE.fullmatch(stripped)
    if whole:
        return Expression(whole.group(1), context, functions).value()
    if "${{" not in text:
        return text
    return TEMPLATE.sub(
        lambda match: as_text(Expression(match.group(1), context, functions).value()), text
    )


def condition(text: Any, context: dict, functions: dict) -> bool:
    """A job's or step's `if:`; without a status function GitHub adds `success() &&`."""
    if text is None:
        return functions["success"]()
    text = str(text)
    holds = truthy(evaluate(text if "${{" in text else f"${{{{ {text} }}}}", context, functions))
    return holds and (any(name in text for name in STATUS_FUNCTIONS) or functions["success"]())


# --- events, records ----------------------------------------------------------------------------


@dataclass
class Event:
    """What GitHub would start a run with."""

    name: str  # push, pull_request, schedule, workflow_dispatch
    ref: str  # refs/heads/x, refs/tags/v1.0.0, refs/pull/7/merge
    sha: str
    secrets: dict[str, str] = field(default_factory=dict)  # the repository's
    environments: dict[str, dict[str, str]] = field(default_factory=dict)  # their secrets
    head_ref: str = ""
    payload: dict = field(default_factory=dict)  # github.event
    inputs: dict = field(default_factory=dict)
    repository: str = "team/project"

    @property
    def ref_name(self) -> str:
        return self.ref.split("/", 2)[2]

    @property
    def ref_type(self) -> str:
        return "tag" if self.ref.startswith("refs/tags/") else "branch"


@dataclass
class Step:
    name: str
    kind: str  # run, played (a checkout/upload/download), skipped-action, skipped-if
    outcome: str  # success, failure, skipped
    exit_code: int | None = None
    log: str = ""


@dataclass
class Job:
    job_id: str
    matrix: dict
    result: str = "skipped"  # success, failure, skipped, not-run (passed elsewhere)
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    summary: str = ""

    def step(self, name: str) -> Step:
        return next(step for step in self.steps if step.name == name)


@dataclass
class Run:
    workflow: str
    event: Event
    started: bool = True  # false when the workflow's `on:` does not take the event
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)

    def job(self, job_id: str, **matrix: str) -> Job:
        return next(
            job for job in self.jobs[job_id] if all(job.matrix[k] == v for k, v in matrix.items())
        )


# --- the runner ---------------------------------------------------------------------------------


class Runner:
    """Plays workflows of the repository `origin` (each as its file reads at the event's commit)
    in the clone `workspace`, one for every job: each checkout step cleans it, as a fresh runner
    would have it."""

    def __init__(self, origin: Path, workspace: Path, *, bin_dir: Path, scratch: Path):
        self.origin, self.workspace, self.scratch = origin, workspace, scratch
        self.runs = 0
        # `make` on the steps' PATH: the real one, with the installed tools
        self.tools = scratch / "tools"
        self.tools.mkdir(parents=True, exist_ok=True)
        make = shutil.which("make") or "/usr/bin/make"
        shim = self.tools / "make"
        shim.write_text(f'#!/bin/sh\nexec "{make}" "$@" BIN="{bin_dir}" SKIP_INSTALL=1\n')
        shim.chmod(0o755)
        if not (workspace / ".git").exists():
            git(scratch, "clone", "-q", str(origin), str(workspace))

    def play(self, workflow_name: str, event: Event) -> Run:
        # GitHub reads the workflow file of the event's commit
        text = git(self.origin, "show", f"{event.sha}:.github/workflows/{workflow_name}")
        workflow = yaml.safe_load(text)
        workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as true
        run = Run(workflow_name, event, started=takes(workflow["on"], event))
        if not run.started:
            return run
        self.runs += 1
        folder = self.scratch / f"run-{self.runs}"
        folder.mkdir()
        for job_id in job_order(workflow["jobs"]):
            spec = workflow["jobs"][job_id]
            legs = matrix_legs(spec.get("strategy", {}).get("matrix"))
            run.jobs[job_id] = [
                self.job(workflow, job_id, spec, matrix, run, folder) for matrix in legs
            ]
        return run

    def job(
        self, workflow: dict, job_id: str, spec: dict, matrix: dict, run: Run, folder: Path
    ) -> Job:
        event, job = run.event, Job(job_id, matrix)
        needs = [spec["needs"]] if isinstance(spec.get("needs"), str) else spec.get("needs", [])
        results = [leg.result for need in needs for leg in run.jobs[need]]
        needs_context = {
            need: {
                "result": combined([leg.result for leg in run.jobs[need]]),
                "outputs": {k: v for leg in run.jobs[need] for k, v in leg.outputs.items()},
            }
            for need in needs
        }
        context = self.context(event, matrix, needs_context, {}, {})
        functions = status_functions(
            lambda: all(r in ("success", "not-run") for r in results),
            lambda: any(r == "failure" for r in results),
        )
        functions["hashfiles"] = lambda *patterns: hash_files(self.workspace, patterns)
        if not condition(spec.get("if"), context, functions):
            return job
        if job_id in NOT_RUN:
            job.result = "not-run"
            return job
        secrets = dict(event.secrets)
        if spec.get("environment"):
            secrets |= event.environments.get(spec["environment"], {})
        context["secrets"] = secrets
        env = {}
        for scope in (workflow.get("env", {}), spec.get("env", {})):
            for key, value in scope.items():
                env[key] = as_text(evaluate(str(value), context | {"env": env}, functions))
        context["env"] = env
        steps: dict[str, dict] = {}
        context["steps"] = steps
        failed = False
        leg = "-".join(f"{key}={value}" for key, value in matrix.items())
        summaries = folder / f"{job_id}-{leg}"
        summaries.mkdir(parents=True, exist_ok=True)
        for number, step in enumerate(spec["steps"]):
            step_functions = status_functions(lambda ok=not failed: ok, lambda bad=failed: bad)
            step_functions["hashfiles"] = functions["hashfiles"]
            name = step.get("name") or step.get("uses") or step.get("run", "").strip()
            if not condition(step.get("if"), context, step_functions):
                job.steps.append(Step(name, "skipped-if", "skipped"))
                if step.get("id"):
                    steps[step["id"]] = {
                        "outputs": {},
                        "outcome": "skipped",
                        "conclusion": "skipped",
                    }
                continue
            record, outputs = self.step(
                step, name, context, step_functions, env, event, summaries, number, run
            )
            job.steps.append(record)
            if record.outcome == "failure" and not step.get("continue-on-error"):
                failed = True
            if step.get("id"):
                steps[step["id"]] = {"outputs": outputs, "outcome": record.outcome}
        job.summary = "".join(
            path.read_text() for path in sorted(summaries.glob("summary-*")) if path.is_file()
        )
        job.result = "failure" if failed else "success"
        for key, value in spec.get("outputs", {}).items():
            job.outputs[key] = as_text(evaluate(str(value), context, functions))
        return job

    def context(self, event: Event, matrix: dict, needs: dict, env: dict, steps: dict) -> dict:
        return {
            "github": {
                "event_name": event.name,
                "event": event.payload,
                "ref": event.ref,
                "ref_name": event.ref_name,
                "ref_type": event.ref_type,
                "sha": event.sha,
                "head_ref": event.head_ref,
                "repository": event.repository,
            },
            "inputs": event.inputs,
            "matrix": matrix,
            "needs": needs,
            "env": env,
            "steps": steps,
            "secrets": {},
            "runner": {"os": "Linux"},
        }

    def step(self, step, name, context, functions, env, event, folder, number, run):
        with_ = {
            key: evaluate(value, context, functions) if isinstance(value, str) else value
            for key, value in step.get("with", {}).items()
        }
        uses = step.get("uses", "")
        if uses and not uses.startswith(PLAYED):
            return Step(name, "skipped-action", "skipped"), {}
        if uses.startswith("actions/checkout@"):
            return self.checkout(name, event, with_), {}
        if uses.startswith("actions/upload-artifact@"):
            return self.upload(name, with_, run), {}
        if uses.startswith("actions/download-artifact@"):
            return self.download(name, with_, run), {}
        step_env = {
            k: as_text(evaluate(str(v), context, functions)) for k, v in step.get("env", {}).items()
        }
        output, summary = folder / f"output-{number}", folder / f"summary-{number:03d}"
        output.touch()
        summary.touch()
        environ = {key: value for key, value in os.environ.items() if key not in MAKE_INPUTS}
        environ = {
            key: value
            for key, value in environ.items()
            if not key.startswith(("MLFLOW_TRACKING_", "GITHUB_"))
        }
        environ |= {
            "PATH": f"{self.tools}:{environ.get('PATH', '')}",
            "PYTHONPATH": str(self.workspace),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event.name,
            "GITHUB_REF": event.ref,
            "GITHUB_REF_NAME": event.ref_name,
            "GITHUB_REF_TYPE": event.ref_type,
            "GITHUB_HEAD_REF": event.head_ref,
            "GITHUB_BASE_REF": event.payload.get("pull_request", {}).get("base", {}).get("ref", ""),
            "GITHUB_SHA": event.sha,
            "GITHUB_REPOSITORY": event.repository,
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_OS": "Linux",
            **env,
            **step_env,
        }
        script = evaluate(step["run"], context, functions)
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.workspace,
            env=environ,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        outputs = dict(
            line.split("=", 1) for line in output.read_text().splitlines() if "=" in line
        )
        outcome = "success" if done.returncode == 0 else "failure"
        return Step(name, "run", outcome, done.returncode, done.stdout + done.stderr), outputs

    def checkout(self, name: str, event: Event, with_: dict) -> Step:
        ref = as_text(with_.get("ref")) or event.ref
        git(
            self.workspace,
            "fetch",
            "-q",
            "--force",
            "--tags",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/pull/*:refs/remotes/pull/*",
        )
        if ref.startswith("refs/heads/"):  # a branch: checked out by name, as actions/checkout
            branch = ref.removeprefix("refs/heads/")
            git(self.workspace, "checkout", "-q", "--force", "-B", branch, f"origin/{branch}")
        else:
            target = (
                ref.removeprefix("refs/tags/") if not ref.startswith("refs/pull/") else event.sha
            )
            git(self.workspace, "checkout", "-q", "--force", "--detach", target)
        if with_.get("clean", True) is not False:
            git(self.workspace, "clean", "-q", "-ffdx")
        return Step(name, "played", "success", 0, f"checked out {ref}")

    def upload(self, name: str, with_: dict, run: Run) -> Step:
        patterns = [line.strip() for line in as_text(with_["path"]).splitlines() if line.strip()]
        files = sorted(
            {
                path
                for pattern in patterns
                for path in expand(self.workspace, pattern)
                if path.is_file()
            }
        )
        if not files:
            return Step(name, "played", "success", 0, "no files: nothing uploaded")
        root = Path(os.path.commonpath([path.parent for path in files]))
        target = self.scratch / f"artifacts-{self.runs}" / as_text(with_["name"])
        for path in files:
            (target / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.relative_to(root))
        run.artifacts[as_text(with_["name"])] = target
        return Step(name, "played", "success", 0, f"uploaded {len(files)} files")

    def download(self, name: str, with_: dict, run: Run) -> Step:
        destination = self.workspace / as_text(with_.get("path") or ".")
        for artifact, folder in run.artifacts.items():
            if fnmatch.fnmatch(artifact, as_text(with_.get("pattern") or "*")):
                into = destination if with_.get("merge-multiple") else destination / artifact
                shutil.copytree(folder, into, dirs_exist_ok=True)
        return Step(name, "played", "success", 0, f"downloaded into {destination}")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def expand(root: Path, pattern: str) -> list[Path]:
    path = root / pattern
    if pattern.endswith("/"):
        return list(path.rglob("*")) if path.is_dir() else []
    return list(root.glob(pattern))


def hash_files(root: Path, patterns: tuple[str, ...]) -> str:
    files = sorted({path for pattern in patterns for path in root.glob(pattern) if path.is_file()})
    if not files:
        return ""
    digest = hashlib.sha256()
    for path in files:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def status_functions(success, failure) -> dict:
    return {
        "success": success,
        "failure": failure,
        "always": lambda: True,
        "cancelled": lambda: False,
    }


def combined(results: list[str]) -> str:
    if "failure" in results:
        return "failure"
    return "success" if results and all(r in ("success", "not-run") for r in results) else "skipped"


def job_order(jobs: dict) -> list[str]:
    """The job ids, each after the jobs it needs."""
    ordered: list[str] = []
    while len(ordered) < len(jobs):
        for job_id, spec in jobs.items():
            needs = [spec["needs"]] if isinstance(spec.get("needs"), str) else spec.get("needs", [])
            if job_id not in ordered and all(need in ordered for need in needs):
                ordered.append(job_id)
    return ordered


def matrix_legs(matrix: dict | None) -> list[dict]:
    if not matrix:
        return [{}]
    keys = list(matrix)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*matrix.values())]


def takes(on: dict, event: Event) -> bool:
    """Whether the workflow's `on:` starts a run for the event (branch and tag filters)."""
    if event.name not in on:
        return False
    spec = on[event.name] or {}
    if event.name != "push":
        return True
    patterns = spec.get("tags" if event.ref_type == "tag" else "branches")
    if patterns is None:  # a tag push to a workflow that filters only branches: not started
        return "tags" not in spec and "branches" not in spec
    matched = False
    for pattern in patterns:  # GitHub: later patterns win; `!` excludes
        negate = pattern.startswith("!")
        if glob_match(event.ref_name, pattern.lstrip("!")):
            matched = not negate
    return matched


def glob_match(name: str, pattern: str) -> bool:
    """GitHub's filter patterns: `*` matches anything but '/', `**` anything."""
    regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return re.fullmatch(regex, name) is not None
