"""Reproduce a model version: rebuild it from its recorded commit, config, seed and data.

The order (`reproduce_model`):

1. resolve the target (`models:/name/N`, `models:/name@alias`, or a run id) and read what its
   training run recorded: `git.commit`, `config/settings.yaml` and `config.hash`, `seed`, the
   task, each table's path and sha256 (`data.tables`, `data.table.<name>.*`), the data digests
   and row counts, `data/schema.json`, `features.digest` and `features/sample.csv`,
   `predictions.digest`, the `test_*` metrics, `pkg.*`, `env.*` and
   `environment/requirements.lock`;
2. refuse a version whose run speaks another rebuild protocol (`ml_project.rebuild_protocol`):
   one trained before that tag existed can only be rebuilt by its own commit's `reproduce`;
3. compare the running software with the recorded one (a warning; an error with `strict`);
4. check the commit out into a temporary `git worktree` (the user's work tree is never
   touched; the worktree is always removed) and run *that commit's* driver there,
   `python -m ml_project.rebuild REQUEST ANSWER`, so its own code retrains, without
   registering or logging anything; the driver stops before training when the rows it would
   train on differ from the recorded digests;
5. compare step by step (config, sources, data, features, model, predictions, metrics), name
   the first step that differs, log a `reproduction` run linked to the original by tags, and
   tag the model version with the verdict.

The only contract between this commit and the one that trained is the JSON request and answer
described in `rebuild.py` (protocol `pipeline.REBUILD_PROTOCOL`). Everything pure here (target
parsing, comparisons, the verdict, the report) is unit-tested; git and MLflow are the edges.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_project import lineage
from ml_project.errors import ConfigError, DataError, NotReproducedError, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

DRIVER_MODULE = "ml_project.rebuild"
RUN_TYPE_TAG = "ml_project.run_type"
PROTOCOL_TAG = "ml_project.rebuild_protocol"
DATA_DIGESTS = ("digest", "train_digest", "test_digest", "test_keys_digest")
# Verdicts: only identical and within_tolerance exit 0; the others exit 6 (NotReproducedError).
IDENTICAL, WITHIN_TOLERANCE, DIFFERENT = "identical", "within_tolerance", "different"
DATA_CHANGED, ENVIRONMENT_DIFFERS = "data_changed", "environment_differs"
# The first step that differs, as the verdict names it.
DIFFERENCE_NAMES = {
    "config": "config differs: the recorded settings do not validate to the recorded hash",
    "data": "data changed",
    "features": "features differ: code or library changed",
    "model": "model differs",
    "predictions": "predictions differ",
    "metrics": "metrics differ",
}
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))/?$")


# ---------------------------------------------------------------- targets and lineage (edges)


@dataclass(frozen=True)
class Target:
    """The model version (or bare run) to reproduce, and where its model files are."""

    run_id: str
    model_uri: str
    model_name: str = ""
    version: str = ""

    def describe(self) -> str:
        if self.version:
            return f"{self.model_name} version {self.version} (run {self.run_id})"
        return f"the model of run {self.run_id}"


@dataclass(frozen=True)
class Recorded:
    """What the training run recorded, read back from the store."""

    run_id: str
    experiment_id: str
    tags: dict[str, str]
    metrics: dict[str, float]
    settings_yaml: str
    lock: dict[str, str] | None = None
    schema: dict[str, Any] | None = None
    feature_sample: dict[str, Any] | None = None


def parse_model_uri(uri: str) -> tuple[str, str, str]:
    """`models:/name/3` -> (name, "3", ""); `models:/name@champion` -> (name, "", "champion")."""
    match = _MODEL_URI.match(uri.strip())
    if not match:
        raise ConfigError(
            f"--model-uri {uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>."
        )
    return match["name"], match["version"] or "", match["alias"] or ""


def resolve_target(
    client: MlflowClient,
    *,
    model_name: str = "",
    version: str = "",
    alias: str = "",
    run_id: str = "",
) -> Target:
    """The registered version (by number or alias) or the run; a RegistryError if not found."""
    from mlflow.exceptions import MlflowException

    try:
        if model_name and (version or alias):
            found = (
                client.get_model_version(model_name, version)
                if version
                else client.get_model_version_by_alias(model_name, alias)
            )
            return Target(
                run_id=found.run_id or found.tags.get("run_id", ""),
                model_uri=f"models:/{model_name}/{found.version}",
                model_name=model_name,
                version=str(found.version),
            )
        run = client.get_run(run_id)
    except MlflowException as exc:
        what = f"version {version}" if version else f"alias @{alias}" if alias else "run"
        where = f"model {model_name} " if model_name else ""
        raise RegistryError(
            f"The registry has no {where}{what}{' ' + run_id if run_id else ''} "
            f"({exc.message.splitlines()[0]}). `ml-project show --env ENV` lists an env's "
            "versions, their aliases and verdicts."
        ) from exc
    if run.data.tags.get(RUN_TYPE_TAG) == "reproduction":
        original = run.data.tags.get("reproduction.of_run_id", "?")
        raise RegistryError(
            f"Run {run_id} is itself a reproduction (of run {original}): reproduce the original."
        )
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if versions:
        found = sorted(versions, key=lambda v: int(v.version))[0]
        return Target(
            run_id=run_id,
            model_uri=f"models:/{found.name}/{found.version}",
            model_name=found.name,
            version=str(found.version),
        )
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
    )
    if not logged:
        raise RegistryError(f"Run {run_id} logged no model: there is nothing to reproduce.")
    return Target(run_id=run_id, model_uri=f"models:/{logged[0].model_id}")


def read_recorded(client: MlflowClient, target: Target, workdir: Path) -> Recorded:
    """The original run's tags, metrics and reproducibility artifacts."""
    from mlflow.exceptions import MlflowException

    if not target.run_id:
        raise RegistryError(f"{target.describe()} names no training run: its lineage is lost.")
    try:
        run = client.get_run(target.run_id)
    except MlflowException as exc:
        raise RegistryError(
            f"{target.describe()}: its training run {target.run_id} is not in the store "
            f"({exc.message.splitlines()[0]})."
        ) from exc
    settings_yaml = _artifact_text(client, target.run_id, "config/settings.yaml", workdir)
    if settings_yaml is None:
        raise RegistryError(
            f"Run {target.run_id} has no config/settings.yaml artifact: the config that trained "
            f"{target.describe()} was not recorded, so it cannot be rebuilt."
        )
    lock_text = _artifact_text(client, target.run_id, "environment/requirements.lock", workdir)
    schema_text = _artifact_text(client, target.run_id, "data/schema.json", workdir)
    sample_path = _artifact_file(client, target.run_id, "features/sample.csv", workdir)
    lock = None
    if lock_text is not None:
        (workdir / "recorded.lock").write_text(lock_text, encoding="utf-8")
        lock = lineage.read_lock(workdir / "recorded.lock")
    return Recorded(
        run_id=target.run_id,
        experiment_id=run.info.experiment_id,
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        settings_yaml=settings_yaml,
        lock=lock,
        schema=json.loads(schema_text) if schema_text else None,
        feature_sample=_read_sample(sample_path) if sample_path else None,
    )


def _artifact_file(client: MlflowClient, run_id: str, path: str, workdir: Path) -> Path | None:
    """A run artifact downloaded into `workdir`, or None when the run did not log it."""
    try:
        local = client.download_artifacts(run_id, path, str(workdir))
    except Exception:  # absent artifact: the store raises OSError or MlflowException
        return None
    return Path(local) if Path(local).is_file() else None


def _artifact_text(client: MlflowClient, run_id: str, path: str, workdir: Path) -> str | None:
    local = _artifact_file(client, run_id, path, workdir)
    return local.read_text(encoding="utf-8") if local else None


def _read_sample(path: Path) -> dict[str, Any]:
    """The recorded feature sample, cell for cell as the driver reports the rebuilt one."""
    from ml_project import rebuild

    return rebuild.read_sample(path)


def recorded_tables(tags: dict[str, str]) -> list[str]:
    """The names of the tables the run read (tag `data.tables`, comma-separated)."""
    return [name for name in (tags.get("data.tables") or "").split(",") if name]


def require_protocol(target: Target, tags: dict[str, str], protocol: str) -> None:
    """A NotReproducedError unless the run was trained under the rebuild protocol spoken here."""
    recorded = tags.get(PROTOCOL_TAG)
    if recorded == protocol:
        return
    commit = tags.get("git.commit", "")[:12] or "(not recorded)"
    why = (
        f"an older rebuild protocol (its run has no tag {PROTOCOL_TAG}: it predates problems/ "
        "and the rebuild driver that each commit runs itself)"
        if recorded is None
        else f"rebuild protocol {recorded!r} (tag {PROTOCOL_TAG})"
    )
    raise NotReproducedError(
        f"{target.describe()} was trained with {why}, and this ml-project speaks protocol "
        f"{protocol!r}: it cannot drive that commit's code, so nothing was rebuilt. To reproduce "
        f"it, check its commit {commit} out (e.g. `git worktree add ../reproduce-{commit[:7]} "
        f"{commit}`) and run that commit's own `ml-project reproduce` there, against the same "
        "tracking store."
    )


def project_trusted_types(settings_yaml: str, root: Path) -> list[str]:
    """The allow-list this checkout's code gives the recorded problem's models (loading.py);
    the platform's alone when that problem is not here any more."""
    import yaml

    from ml_project import estimators, loading
    from ml_project.problem import load_problem
    from ml_project.settings import validate_settings

    try:
        settings = validate_settings(yaml.safe_load(settings_yaml))
        return loading.trusted_types(load_problem(settings, root))
    except (ConfigError, DataError, ImportError, TypeError, ValueError):
        return list(estimators.TRUSTED_TYPES)


def download_model(
    target: Target, workdir: Path, tracking_uri: str, trusted: list[str]
) -> dict[str, Any]:
    """The registered model's skops file, checked against the project's allow-list `trusted`,
    and that list (not the one its MLmodel declares) for the rebuild to load it with."""
    import mlflow
    import yaml

    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=target.model_uri,
                dst_path=str(workdir / "registered"),
                tracking_uri=tracking_uri,
            )
        )
    except Exception as exc:  # missing files or an unreachable artifact store
        raise RegistryError(
            f"The model files of {target.describe()} cannot be read from {target.model_uri}: {exc}"
        ) from exc
    mlmodel = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8"))
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    if flavor.get("serialization_format") != "skops" or not flavor.get("pickled_model"):
        return {}  # only skops files are loaded (safely); the model step is then not compared
    from ml_project import loading

    path = loading.verified_file(local, trusted, uri=target.model_uri)
    return {"path": str(path), "trusted_types": list(trusted)}


# ---------------------------------------------------------------- git checkout (edge)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def repository(root: Path) -> tuple[Path, str]:
    """The git repository holding the project at `root`, and the project's path inside it."""
    top = _git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise RegistryError(
            f"{root} is not inside a git repository: reproduce checks the recorded commit out of "
            "the project's repository, so run it from a clone of that repository."
        )
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip()
    return Path(top.stdout.strip()), prefix


def require_commit(repo: Path, commit: str, *, what: str) -> None:
    """A RegistryError unless `commit` is a commit object of `repo`."""
    if not re.fullmatch(r"[0-9a-f]{7,64}", commit or ""):
        raise RegistryError(
            f"{what} records no git commit (git.commit={commit!r}): the code that trained it "
            "cannot be found, so it cannot be rebuilt."
        )
    if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise RegistryError(
            f"Commit {commit} that trained {what} is not in the repository at {repo}: it may "
            "have been rewritten (amend, rebase, force-push) or never fetched. Fetch it "
            f"(git fetch origin {commit}) or run reproduce from a clone that has it."
        )


@contextmanager
def checkout(repo: Path, commit: str) -> Iterator[Path]:
    """A temporary detached worktree of `commit`, always removed; the user's tree is untouched."""
    holder = Path(tempfile.mkdtemp(prefix="ml-project-reproduce-"))
    path = holder / "code"
    added = _git(repo, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach",
                 "--quiet", str(path), commit)  # fmt: skip
    try:
        if added.returncode != 0:
            raise RegistryError(
                f"Cannot check commit {commit} out of {repo}: {added.stderr.strip()}"
            )
        yield path
    finally:
        if added.returncode == 0:
            _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(holder, ignore_errors=True)
        _git(repo, "worktree", "prune")


def run_driver(code: Path, request: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Run the checkout's own `python -m ml_project.rebuild` in `code`; its JSON answer."""
    request_path, answer_path = workdir / "request.json", workdir / "answer.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    environ = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    environ.pop("ML_PROJECT_ROOT", None)
    done = subprocess.run(
        [sys.executable, "-m", DRIVER_MODULE, str(request_path), str(answer_path)],
        cwd=code, env=environ, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not answer_path.is_file():
        lines = done.stderr.strip().splitlines()
        tail = lines[-1].strip() if lines else "(nothing on stderr)"  # the error, not its traceback
        raise NotReproducedError(
            f"The rebuild driver of the checkout ({DRIVER_MODULE} in {code}) ended with exit "
            f"{done.returncode} without an answer: {tail}"
        )
    answer: dict[str, Any] = json.loads(answer_path.read_text(encoding="utf-8"))
    where = answer.get("code") or {}
    for what, file in (("ml_project", where.get("package_file")),
                       ("the problem's code", where.get("problem_file"))):  # fmt: skip
        if file and not Path(file).is_relative_to(code.resolve()):
            raise NotReproducedError(
                f"The rebuild imported {what} from {file}, not from the checkout {code}: "
                "another copy shadows it on sys.path, so the old code did not run."
            )
    return answer


# ---------------------------------------------------------------- comparisons (pure)


def compare_environment(
    tags: dict[str, str],
    *,
    installed: dict[str, str],
    running: dict[str, str],
    lock: dict[str, str] | None = None,
    installed_lock: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Recorded `pkg.*`, `env.python`/`env.machine` and lock pins against the running ones."""
    differences = []
    recorded: str | None
    for key, recorded in sorted(tags.items()):
        if key.startswith("pkg."):
            name = key[4:]
            now = installed.get(name, "")
            if now != recorded:
                differences.append({"what": name, "recorded": recorded, "now": now or "missing"})
    for key in ("python", "machine"):
        recorded = tags.get(f"env.{key}")
        if recorded is not None and recorded != running.get(key):
            differences.append({"what": key, "recorded": recorded, "now": running.get(key, "")})
    lock_differences = []
    for name, recorded in sorted((lock or {}).items()):
        now = (installed_lock or {}).get(name, "")
        if now != recorded:
            lock_differences.append({"what": name, "recorded": recorded, "now": now or "missing"})
    notes = []
    if tags.get("env.os") and tags.get("env.os") != running.get("os"):
        notes.append(f"trained on {tags['env.os']}, now {running.get('os', '')}")
    return {
        "step": "environment",
        "status": IDENTICAL if not differences and not lock_differences else DIFFERENT,
        "key_packages": differences,
        "lock": lock_differences,
        "lock_recorded": lock is not None,
        "notes": notes,
    }


def compare_sources(recorded: Recorded, answer: dict[str, Any]) -> dict[str, Any]:
    """Each table's file today against what training read: sha256, path, rows, schema."""
    tags = recorded.tags
    files: dict[str, Any] = {}
    changed = False
    for name in recorded_tables(tags):
        today = (answer.get("sources") or {}).get(name) or {}
        then: dict[str, Any] = {
            "path": tags.get(f"data.table.{name}.path"),
            "sha256": tags.get(f"data.table.{name}.sha256"),
            "rows": _int(tags.get(f"data.table.{name}.rows")),
            "schema": (recorded.schema or {}).get(name),
        }
        entry: dict[str, Any] = {"recorded": then, "today": {k: today.get(k) for k in then}}
        entry["sha256_equal"] = then["sha256"] == today.get("sha256")
        entry["schema_changes"] = schema_changes(then["schema"], today.get("schema"))
        changed |= not entry["sha256_equal"]
        files[name] = entry
    return {"step": "sources", "status": DIFFERENT if changed else IDENTICAL, "files": files}


def schema_changes(
    then: dict[str, Any] | None, today: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Columns added, removed, and with a new dtype (None when either side is unknown)."""
    if then is None or today is None:
        return None
    return {
        "added": [c for c in today if c not in then],
        "removed": [c for c in then if c not in today],
        "retyped": {c: [then[c], today[c]] for c in then if c in today and then[c] != today[c]},
    }


def compare_data(tags: dict[str, str], answer_data: dict[str, Any] | None) -> dict[str, Any]:
    """The rows used (digests of every row and column) and row counts, recorded vs rebuilt."""
    answer_data = answer_data or {}
    digests = answer_data.get("digests") or {}
    rows = answer_data.get("rows") or {}
    compared = {
        key: {"recorded": tags.get(f"data.{key}"), "rebuilt": digests.get(key)}
        for key in DATA_DIGESTS
        if tags.get(f"data.{key}") is not None
    }
    counts = {
        key: {"recorded": _int(tags.get(f"data.rows_{key}")), "rebuilt": value}
        for key, value in rows.items()
    }
    differs = any(v["recorded"] != v["rebuilt"] for v in compared.values()) or any(
        v["recorded"] is not None and v["recorded"] != v["rebuilt"] for v in counts.values()
    )
    status = "not_recorded" if not compared else DIFFERENT if differs else IDENTICAL
    return {
        "step": "data",
        "status": status,
        "digests": compared,
        "rows": counts,
    }


def compare_features(
    tags: dict[str, str], answer: dict[str, Any], sample: dict[str, Any] | None
) -> dict[str, Any]:
    """The transformed train matrix: digest, and which sampled columns differ."""
    rebuilt = (answer.get("features") or {}).get("digest")
    recorded = tags.get("features.digest")
    result = {"step": "features", "recorded": recorded, "rebuilt": rebuilt}
    if recorded is None:
        result["status"] = "not_recorded"
        return result
    result["status"] = IDENTICAL if recorded == rebuilt else DIFFERENT
    rebuilt_sample = (answer.get("features") or {}).get("sample")
    if result["status"] == DIFFERENT and sample and rebuilt_sample:
        result["sample_columns_differ"] = sample_differences(sample, rebuilt_sample)
    return result


def sample_differences(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> list[str]:
    """Columns of the feature sample that differ (added/removed columns included)."""
    columns_then, columns_now = recorded["columns"], rebuilt["columns"]
    differ = [c for c in columns_then if c not in columns_now]
    differ += [c for c in columns_now if c not in columns_then]
    rows_then, rows_now = recorded["rows"], rebuilt["rows"]
    for column in columns_then:
        if column not in columns_now:
            continue
        i, j = columns_then.index(column), columns_now.index(column)
        values_then = [row[i] for row in rows_then]
        values_now = [row[j] for row in rows_now]
        if values_then != values_now:
            differ.append(column)
    return differ


def compare_model(answer: dict[str, Any]) -> dict[str, Any]:
    """The rebuilt model's fitted state and parameters against the registered model's."""
    rebuilt = answer.get("model") or {}
    registered = answer.get("registered")
    result = {"step": "model", "rebuilt": rebuilt.get("digest"), "class": rebuilt.get("class")}
    if not registered:
        result["status"] = "not_recorded"
        return result
    params_then, params_now = registered.get("params") or {}, rebuilt.get("params") or {}
    result["registered"] = registered.get("digest")
    result["params_differ"] = {
        key: [params_then.get(key), params_now.get(key)]
        for key in sorted(set(params_then) | set(params_now))
        if params_then.get(key) != params_now.get(key)
    }
    result["status"] = IDENTICAL if result["registered"] == result["rebuilt"] else DIFFERENT
    return result


def compare_predictions(tags: dict[str, str], answer: dict[str, Any]) -> dict[str, Any]:
    """Held-out predictions (every class probability, or the value): digest vs the recorded
    tag, max abs diff vs the registered model's own predictions."""
    rebuilt = answer.get("predictions") or {}
    registered = answer.get("registered") or {}
    recorded = tags.get("predictions.digest") or registered.get("predictions_digest")
    result = {
        "step": "predictions",
        "rows": rebuilt.get("rows"),
        "recorded": recorded,
        "recorded_from": "tag" if tags.get("predictions.digest") else "registered model",
        "rebuilt": rebuilt.get("digest"),
        "max_abs_diff": rebuilt.get("max_abs_diff"),
    }
    if tags.get("predictions.digest") and registered.get("predictions_digest"):
        result["registered_model_matches_tag"] = (
            registered["predictions_digest"] == tags["predictions.digest"]
        )
    if recorded is None:
        result["status"] = "not_recorded"
    else:
        result["status"] = IDENTICAL if recorded == rebuilt.get("digest") else DIFFERENT
    return result


def compare_metrics(
    metrics: dict[str, float], answer: dict[str, Any], *, task: str = ""
) -> dict[str, Any]:
    """Each rebuilt held-out metric against the recorded `test_<name>` (NaN equals NaN: a
    metric undefined on those rows both times)."""
    rebuilt = answer.get("metrics") or {}
    values = {
        name: {"recorded": metrics.get(f"test_{name}"), "rebuilt": value}
        for name, value in sorted(rebuilt.items())
        if f"test_{name}" in metrics
    }
    diffs = [_difference(v["recorded"], v["rebuilt"]) for v in values.values()]
    return {
        "step": "metrics",
        "task": task,
        "status": IDENTICAL if values and max(diffs) == 0 else DIFFERENT,
        "values": values,
        "max_abs_diff": max(diffs) if diffs else None,
    }


def _difference(recorded: float, rebuilt: float) -> float:
    if math.isnan(recorded) and math.isnan(rebuilt):
        return 0.0
    if math.isnan(recorded) or math.isnan(rebuilt):
        return math.inf
    return abs(recorded - rebuilt)


def verdict(steps: list[dict[str, Any]], *, tolerance: float | None) -> tuple[str, str]:
    """(verdict, first difference): identical, within_tolerance, different or data_changed."""
    by_name = {step["step"]: step for step in steps}
    if by_name.get("data", {}).get("status") == DIFFERENT:
        return DATA_CHANGED, DIFFERENCE_NAMES["data"]
    first = next(
        (
            name
            for name in ("config", "features", "model", "predictions", "metrics")
            if by_name.get(name, {}).get("status") == DIFFERENT
        ),
        None,
    )
    if first is None:
        return IDENTICAL, ""
    if tolerance is not None:
        predictions = by_name.get("predictions", {}).get("max_abs_diff")
        metrics = by_name.get("metrics", {}).get("max_abs_diff")
        if (
            predictions is not None
            and metrics is not None
            and predictions <= tolerance
            and metrics <= tolerance
        ):
            return WITHIN_TOLERANCE, DIFFERENCE_NAMES[first]
    return DIFFERENT, DIFFERENCE_NAMES[first]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- the command


@dataclass
class ReproductionResult:
    """The verdict and every step's comparison, for the CLI summary, `--json` and the run."""

    target: Target
    commit: str
    tolerance: float | None
    strict: bool
    verdict: str = ""
    first_difference: str = ""
    error: str = ""
    traceback: str = ""  # the old code's, when it raised: in the report, never in the message
    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reproduction_run_id: str = ""
    experiment_id: str = ""
    tracking_uri: str = ""
    seconds: float = 0.0

    @property
    def reproduced(self) -> bool:
        return self.verdict in (IDENTICAL, WITHIN_TOLERANCE)

    @property
    def exit_code(self) -> int:
        return 0 if self.reproduced else NotReproducedError.exit_code

    def step(self, name: str) -> dict[str, Any]:
        return next((step for step in self.steps if step["step"] == name), {})

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reproduced": self.reproduced,
            "first_difference": self.first_difference,
            "error": self.error,
            "traceback": self.traceback,
            "exit_code": self.exit_code,
            "model_name": self.target.model_name,
            "model_version": self.target.version,
            "model_uri": self.target.model_uri,
            "run_id": self.target.run_id,
            "commit": self.commit,
            "tolerance": self.tolerance,
            "strict": self.strict,
            "warnings": self.warnings,
            "steps": self.steps,
            "reproduction_run_id": self.reproduction_run_id,
            "experiment_id": self.experiment_id,
            "tracking_uri": self.tracking_uri,
            "seconds": round(self.seconds, 3),
        }


def reproduce_model(
    *,
    root: Path,
    model_name: str = "",
    version: str = "",
    alias: str = "",
    run_id: str = "",
    tolerance: float | None = None,
    strict: bool = False,
    tables: dict[str, Path] | None = None,
) -> ReproductionResult:
    """Rebuild the target from its commit, config, seed and data, and compare step by step.

    `tables` reads a moved copy of a recorded table ({name: path}, `--table NAME=PATH`).
    Returns the result whatever the verdict (the caller decides the exit code); raises
    RegistryError when the target, its lineage or its commit cannot be found, DataError when a
    recorded data file is gone, NotReproducedError when the version was trained under another
    rebuild protocol, and ConfigError when `tables` names a table the run did not read.
    """
    from ml_project import tracking
    from ml_project.pipeline import FEATURE_SAMPLE_ROWS, REBUILD_PROTOCOL

    started = time.perf_counter()
    client = tracking.connect(root)
    target = resolve_target(
        client, model_name=model_name, version=version, alias=alias, run_id=run_id
    )
    with tempfile.TemporaryDirectory(prefix="ml-project-reproduce-") as scratch:
        workdir = Path(scratch)
        recorded = read_recorded(client, target, workdir)
        require_protocol(target, recorded.tags, REBUILD_PROTOCOL)
        overrides = table_overrides(target, recorded.tags, tables or {})
        commit = recorded.tags.get("git.commit", "")
        repo, prefix = repository(root)
        require_commit(repo, commit, what=target.describe())
        result = ReproductionResult(
            target=target,
            commit=commit,
            tolerance=tolerance,
            strict=strict,
            experiment_id=recorded.experiment_id,
            tracking_uri=tracking.redact(client.tracking_uri),
        )
        if recorded.tags.get("git.dirty") == "true":
            result.warnings.append(
                f"the original was trained from uncommitted changes on top of {commit[:12]}; "
                "they are not in the commit, so the rebuild may differ"
            )
        environment = _environment_step(recorded)
        result.steps.append(environment)
        result.warnings += _environment_warnings(environment)
        if strict and environment["status"] == DIFFERENT:
            result.error = "--strict: the software differs from the one recorded at training"
            return _finish(client, recorded, result, ENVIRONMENT_DIFFERS, "environment differs",
                           started)  # fmt: skip
        trusted = project_trusted_types(recorded.settings_yaml, root)
        registered_model = download_model(target, workdir, client.tracking_uri, trusted)
        with checkout(repo, commit) as code:
            project = code / prefix
            request = {
                "protocol": REBUILD_PROTOCOL,
                "settings_yaml": recorded.settings_yaml,
                "data_root": str(Path(root).resolve()),
                "code_root": str(project),
                "tables": overrides,
                "expect_data": {key: recorded.tags.get(f"data.{key}") for key in DATA_DIGESTS},
                "registered_model": registered_model,
                "sample_rows": FEATURE_SAMPLE_ROWS,
            }
            answer = run_driver(project, request, workdir)
    result.steps.append(
        {
            "step": "code",
            "status": IDENTICAL,
            "commit": commit,
            "protocol": answer.get("protocol"),
            "ml_project_version": (answer.get("code") or {}).get("version"),
            "seconds": answer.get("timings"),
        }
    )
    result.steps += compare_steps(recorded, answer)
    if result.step("sources").get("status") == DIFFERENT:
        changed = [n for n, f in result.step("sources")["files"].items() if not f["sha256_equal"]]
        if result.step("data").get("status") == IDENTICAL:
            result.warnings.append(
                f"the file(s) of table(s) {', '.join(changed)} changed since training, but the "
                "rows and columns the model uses are identical"
            )
    if answer.get("error"):
        outcome, first = _driver_failure(answer, recorded, result)
    elif answer.get("stopped") == "data" or result.step("data").get("status") == DIFFERENT:
        outcome, first = DATA_CHANGED, DIFFERENCE_NAMES["data"]
    else:
        outcome, first = verdict(result.steps, tolerance=tolerance)
    return _finish(client, recorded, result, outcome, first, started)


def table_overrides(
    target: Target, tags: dict[str, str], tables: dict[str, Path]
) -> dict[str, str | None]:
    """{recorded table: override path or None}; a ConfigError for a table the run did not read."""
    names = recorded_tables(tags)
    unknown = [name for name in tables if name not in names]
    if unknown:
        raise ConfigError(
            f"--table {unknown[0]}=...: {target.describe()} was trained on the table(s) "
            f"{', '.join(names) or '(none recorded)'}; name one of them."
        )
    return {name: _path(tables.get(name)) for name in names}


def compare_steps(recorded: Recorded, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """config, sources, data; then, if the rebuild trained, features, model, predictions and
    metrics."""
    tags = recorded.tags
    config = answer.get("config")
    steps = []
    if config is not None:
        same = config.get("hash") == tags.get("config.hash") and str(config.get("seed")) == (
            tags.get("seed")
        )
        steps.append(
            {
                "step": "config",
                "status": IDENTICAL if same else DIFFERENT,
                "recorded": {"hash": tags.get("config.hash"), "seed": tags.get("seed")},
                "rebuilt": config,
            }
        )
    if answer.get("sources") is not None:
        steps.append(compare_sources(recorded, answer))
    if answer.get("data") is not None:
        steps.append(compare_data(tags, answer["data"]))
    if "model" not in answer:
        return steps
    return [
        *steps,
        compare_features(tags, answer, recorded.feature_sample),
        compare_model(answer),
        compare_predictions(tags, answer),
        compare_metrics(recorded.metrics, answer, task=tags.get("ml_project.task", "")),
    ]


def _environment_step(recorded: Recorded) -> dict[str, Any]:
    names = [key[4:] for key in recorded.tags if key.startswith("pkg.")]
    lock = recorded.lock
    needed = lineage.runtime_closure()
    if lock and needed is not None:  # the optional extras' pins (tests, Spark) are not needed
        lock = {name: pin for name, pin in lock.items() if name in needed}
    return compare_environment(
        recorded.tags,
        installed=lineage.package_versions(names),
        running=lineage.environment_info(),
        lock=lock,
        installed_lock=lineage.package_versions(list(lock)) if lock else None,
    )


def _environment_warnings(step: dict[str, Any]) -> list[str]:
    warnings = [
        f"{item['what']} was {item['recorded']} at training, is {item['now']} now"
        for item in step["key_packages"]
    ]
    if step["lock"]:
        shown = ", ".join(f"{i['what']} {i['recorded']} -> {i['now']}" for i in step["lock"][:5])
        more = f" and {len(step['lock']) - 5} more" if len(step["lock"]) > 5 else ""
        warnings.append(
            f"{len(step['lock'])} pin(s) of the recorded requirements.lock differ: {shown}{more}"
        )
    return warnings


def _driver_failure(
    answer: dict[str, Any], recorded: Recorded, result: ReproductionResult
) -> tuple[str, str]:
    """A failure inside the old code: a missing file (DataError), changed data, or a crash."""
    error = answer["error"]
    step, message = error.get("step"), f"{error.get('type')}: {error.get('message')}"
    commit, target = result.commit[:12], result.target
    if step == "sources":
        for name, source in (answer.get("sources") or {}).items():
            if not Path(source.get("path", "")).is_file():
                raise DataError(
                    f"{source.get('path')}: no such file. {target.describe()} was trained on "
                    f"table {name} read from {recorded.tags.get(f'data.table.{name}.path', '?')}"
                    f"; pass --table {name}=PATH to read a copy of it (its sha256 must still be "
                    f"{recorded.tags.get(f'data.table.{name}.sha256', '?')})."
                )
        result.error = f"the code of commit {commit} cannot read the data any more ({message})"
        return DATA_CHANGED, DIFFERENCE_NAMES["data"]
    if step == "data":
        result.error = f"the code of commit {commit} cannot prepare today's data ({message})"
        return DATA_CHANGED, DIFFERENCE_NAMES["data"]
    result.error = (
        f"the code of commit {commit} failed at step {step!r} in this environment: "
        + " ".join(message.split())  # one line; the traceback goes to the report only
    )
    result.traceback = error.get("traceback", "")
    return DIFFERENT, f"the rebuild failed at step {step!r}"


def _finish(
    client: MlflowClient,
    recorded: Recorded,
    result: ReproductionResult,
    outcome: str,
    first: str,
    started: float,
) -> ReproductionResult:
    result.verdict, result.first_difference = outcome, first
    result.seconds = time.perf_counter() - started
    result.reproduction_run_id = log_reproduction(client, recorded, result)
    return result


def _path(value: Path | None) -> str | None:
    return str(Path(value).expanduser().resolve()) if value else None


def log_reproduction(client: MlflowClient, recorded: Recorded, result: ReproductionResult) -> str:
    """A `reproduction` run in the original's experiment, linked by tags; the version tagged."""
    import mlflow

    from ml_project import tracking

    target = result.target
    tags = {
        RUN_TYPE_TAG: "reproduction",
        "reproduction.of_run_id": target.run_id,
        "reproduction.model_name": target.model_name,
        "reproduction.model_version": target.version,
        "reproduction.model_uri": target.model_uri,
        "reproduction.commit": result.commit,
        "reproduction.verdict": result.verdict,
        "reproduction.first_difference": result.first_difference,
        "reproduction.strict": str(result.strict).lower(),
        "reproduction.tolerance": "" if result.tolerance is None else repr(result.tolerance),
    }
    name = tracking.run_name(
        "reproduce", target.model_name or "run", target.version or target.run_id[:8]
    )
    with mlflow.start_run(experiment_id=recorded.experiment_id, run_name=name, tags=tags) as run:
        result.reproduction_run_id = run.info.run_id
        mlflow.log_dict(result.as_dict(), "reproduction/report.json")
        if result.traceback:
            mlflow.log_text(result.traceback, "reproduction/traceback.txt")
        numbers = {
            "seconds": result.seconds,
            "reproduced": float(result.reproduced),
            "max_abs_prediction_diff": result.step("predictions").get("max_abs_diff"),
            "max_abs_metric_diff": result.step("metrics").get("max_abs_diff"),
        }
        mlflow.log_metrics({k: float(v) for k, v in numbers.items() if v is not None})
    if target.version:
        for key, value in (
            ("reproduction.verdict", result.verdict),
            ("reproduction.run_id", run.info.run_id),
        ):
            client.set_model_version_tag(target.model_name, target.version, key, value)
    run_id: str = run.info.run_id
    return run_id


# ---------------------------------------------------------------- what a person reads (pure)

HEADLINES = {
    IDENTICAL: "identical",
    WITHIN_TOLERANCE: "equal within tolerance",
    DIFFERENT: "DIFFERENT",
    DATA_CHANGED: "DATA CHANGED",
    ENVIRONMENT_DIFFERS: "ENVIRONMENT DIFFERS (--strict)",
}


def failure_message(result: dict[str, Any]) -> str:
    """One paragraph for stderr when the target was not reproduced."""
    what = (
        f"{result['model_name']} version {result['model_version']}"
        if result["model_version"]
        else f"the model of run {result['run_id']}"
    )
    commit = result["commit"][:12]
    if result["verdict"] == DATA_CHANGED:
        changed = [
            f"{name} sha256 {f['recorded']['sha256'][:12]} at training, "
            f"{(f['today']['sha256'] or '?')[:12]} today"
            for name, f in (_find(result, "sources").get("files") or {}).items()
            if not f["sha256_equal"] and f["recorded"]["sha256"]
        ]
        detail = f" ({'; '.join(changed)})" if changed else ""
        reason = result["error"] or "the rows it was trained on differ from today's data"
        return (
            f"data changed: {what} cannot be rebuilt from commit {commit}: {reason}{detail}. "
            "Nothing was retrained; the report above compares the recorded digests, row counts "
            "and schema with today's."
        )
    if result["verdict"] == ENVIRONMENT_DIFFERS:
        return (
            f"{what}: the running software differs from the one recorded at training "
            f"({'; '.join(result['warnings'])}). Install the recorded requirements.lock "
            "(or use the Docker image) or drop --strict to rebuild anyway."
        )
    tolerance = (
        f" beyond --tolerance {result['tolerance']}" if result["tolerance"] is not None else ""
    )
    error = f" ({result['error']})" if result["error"] else ""
    where = (
        " The old code's traceback is reproduction/traceback.txt of the reproduction run."
        if result.get("traceback")
        else ""
    )
    return (
        f"{what} rebuilt from commit {commit} differs{tolerance}: "
        f"{result['first_difference']}{error}. The report above says what differs, step by "
        f"step.{where}"
    )


def format_summary(result: dict[str, Any]) -> str:
    """The verdict, then one line (or a few) per step, then warnings and where it was logged."""
    what = (
        f"{result['model_name']} version {result['model_version']}"
        if result["model_version"]
        else f"the model of run {result['run_id']}"
    )
    headline = HEADLINES.get(result["verdict"], result["verdict"])
    first = f" ({result['first_difference']})" if result["first_difference"] else ""
    lines = [
        f"Reproduction of {what} from commit {result['commit'][:12]}: {headline}{first}.",
        f"  {'original run':<12} {result['run_id']}",
    ]
    for step in result["steps"]:
        describe = _DESCRIBE.get(step["step"])
        if describe:
            for i, text in enumerate(describe(step)):
                lines.append(f"  {step['step'] if i == 0 else '':<12} {text}")
    lines += [f"  warning: {warning}" for warning in result["warnings"]]
    if result["error"]:
        lines.append(f"  error: {result['error'].splitlines()[0]}")
    lines.append(
        f"  {'logged':<12} reproduction run {result['reproduction_run_id']} "
        f"({result['seconds']:.1f} s)"
    )
    return "\n".join(lines)


def _find(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next((step for step in result["steps"] if step["step"] == name), {})


def _short(value: object) -> str:
    return str(value)[:12] if value else "(not recorded)"


def _status(step: dict[str, Any]) -> str:
    status: str = {
        IDENTICAL: "identical",
        DIFFERENT: "DIFFERENT",
        "not_recorded": "not recorded at training: not compared",
    }.get(step["status"], step["status"])
    return status


def _describe_environment(step: dict[str, Any]) -> list[str]:
    if step["status"] == IDENTICAL:
        lock = (
            ", and every pin of the recorded requirements.lock the project needs (its extras aside)"
            if step["lock_recorded"]
            else ""
        )
        return [f"identical: python, CPU architecture and key packages as recorded{lock}"]
    items = [f"{i['what']} {i['recorded']} -> {i['now']}" for i in step["key_packages"]]
    lock = f"; {len(step['lock'])} lock pin(s) differ" if step["lock"] else ""
    return [f"DIFFERENT: {', '.join(items) or 'key packages as recorded'}{lock}"]


def _describe_code(step: dict[str, Any]) -> list[str]:
    seconds = step.get("seconds") or {}
    timing = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in seconds.items() if v is not None)
    return [f"commit {step['commit'][:12]} ran from a temporary worktree ({timing})"]


def _describe_config(step: dict[str, Any]) -> list[str]:
    rebuilt, recorded = step["rebuilt"], step["recorded"]
    if step["status"] == IDENTICAL:
        return [f"identical (hash {_short(recorded['hash'])}, seed {recorded['seed']})"]
    return [
        f"DIFFERENT: hash {_short(recorded['hash'])} recorded, {_short(rebuilt.get('hash'))} "
        f"rebuilt; seed {recorded['seed']} recorded, {rebuilt.get('seed')} rebuilt"
    ]


def _describe_sources(step: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in step["files"].items():
        then, today = entry["recorded"], entry["today"]
        if entry["sha256_equal"]:
            lines.append(f"{name}: identical (sha256 {_short(today['sha256'])}) {today['path']}")
            continue
        lines.append(f"{name}: CHANGED {today['path']}")
        lines.append(
            f"  sha256  {_short(then['sha256'])} at training, {_short(today['sha256'])} now"
        )
        if then["path"] and then["path"] != today["path"]:
            lines.append(f"  path    {then['path']} at training")
        if then["rows"] is not None or today["rows"] is not None:
            at_training = "not recorded" if then["rows"] is None else then["rows"]
            lines.append(f"  rows    {at_training} at training, {today['rows']} now")
        changes = entry["schema_changes"]
        if changes is None:
            lines.append("  schema  not recorded at training")
        elif not any(changes.values()):
            lines.append(f"  schema  same {len(then['schema'])} columns and dtypes")
        else:
            retyped = [f"{c} {a} -> {b}" for c, (a, b) in changes["retyped"].items()]
            parts = [
                f"added {', '.join(changes['added'])}" if changes["added"] else "",
                f"removed {', '.join(changes['removed'])}" if changes["removed"] else "",
                f"retyped {', '.join(retyped)}" if retyped else "",
            ]
            lines.append(f"  schema  {'; '.join(p for p in parts if p)}")
    return lines


def _describe_data(step: dict[str, Any]) -> list[str]:
    rows = step["rows"]
    if step["status"] != DIFFERENT:
        used = rows.get("train", {}).get("rebuilt"), rows.get("test", {}).get("rebuilt")
        digest = _short(step["digests"].get("digest", {}).get("rebuilt"))
        return [f"{_status(step)} (digest {digest}; {used[0]} train, {used[1]} test rows)"]
    lines = ["CHANGED: the rows and columns used differ from the recorded ones"]
    for key, value in step["digests"].items():
        mark = "" if value["recorded"] == value["rebuilt"] else "  <- differs"
        lines.append(
            f"  {key:<23} {_short(value['recorded'])} at training, "
            f"{_short(value['rebuilt'])} now{mark}"
        )
    for key, value in rows.items():
        mark = "" if value["recorded"] == value["rebuilt"] else "  <- differs"
        lines.append(
            f"  rows {key:<18} {value['recorded']} at training, {value['rebuilt']} now{mark}"
        )
    return lines


def _describe_features(step: dict[str, Any]) -> list[str]:
    if step["status"] != DIFFERENT:
        return [f"{_status(step)} (transformed train matrix digest {_short(step['rebuilt'])})"]
    columns = step.get("sample_columns_differ")
    where = f"; columns differing in the sample: {', '.join(columns)}" if columns else ""
    return [
        f"DIFFERENT: digest {_short(step['recorded'])} recorded, {_short(step['rebuilt'])} "
        f"rebuilt{where}"
    ]


def _describe_model(step: dict[str, Any]) -> list[str]:
    if step["status"] != DIFFERENT:
        equal = "; parameters equal" if step["status"] == IDENTICAL else ""
        return [f"{_status(step)} (fitted state digest {_short(step['rebuilt'])}{equal})"]
    params = step.get("params_differ") or {}
    listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in list(params.items())[:5])
    return [
        f"DIFFERENT: fitted state {_short(step.get('registered'))} registered, "
        f"{_short(step['rebuilt'])} rebuilt; "
        + (f"parameters differ: {listed}" if params else "parameters equal, fitted values differ")
    ]


def _describe_predictions(step: dict[str, Any]) -> list[str]:
    diff = step.get("max_abs_diff")
    diff_text = "unknown" if diff is None else f"{diff:.3g}"
    digest = _short(step["rebuilt"])
    text = f"{step['rows']} evaluation rows, digest {digest}, max abs diff {diff_text}"
    if step["status"] == DIFFERENT:
        return [f"DIFFERENT: {text} (recorded digest {_short(step['recorded'])})"]
    return [f"{_status(step)} ({text})"]


def _describe_metrics(step: dict[str, Any]) -> list[str]:
    from ml_project import metrics

    values = step["values"]
    task = step.get("task") or ""
    order = metrics.metrics_of(task) if task in metrics.TASKS else values
    shown = [name for name in order if name in values]
    if step["status"] == IDENTICAL:
        text = ", ".join(f"{k} {values[k]['rebuilt']:.4f}" for k in shown)
        return [f"identical ({text})"]
    text = ", ".join(
        f"{k} {values[k]['recorded']:.6f} -> {values[k]['rebuilt']:.6f}"
        for k in shown
        if _difference(values[k]["recorded"], values[k]["rebuilt"]) > 0
    )
    return [f"DIFFERENT: {text or 'not recorded'}"]


_DESCRIBE = {
    "environment": _describe_environment,
    "code": _describe_code,
    "config": _describe_config,
    "sources": _describe_sources,
    "data": _describe_data,
    "features": _describe_features,
    "model": _describe_model,
    "predictions": _describe_predictions,
    "metrics": _describe_metrics,
}
