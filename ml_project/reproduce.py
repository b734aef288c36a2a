"""Reproduce a model version: rebuild it from its recorded commit, config, seed and data.

The flow (`reproduce_model`): resolve the target and read what its training run recorded;
refuse a run of another rebuild protocol (`ml_project.rebuild_protocol`); compare the running
software with the recorded one (an error with `strict`); check the commit out into a temporary
`git worktree` (the user's tree is never touched) and run *that commit's* driver there,
`python -m ml_project.rebuild REQUEST ANSWER` (rebuild.py: the only contract between the two
commits); compare step by step (comparisons.py), log a `reproduction` run linked to the
original by tags, and tag the model version with the verdict. Git and MLflow are the edges.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from ml_project import (
    estimators,
    lineage,
    loading,
    metrics,
    model_digest,
    progress,
    rebuild,
    snapshots,
    tracking,
    views,
)
from ml_project import vocabulary as tag
from ml_project.comparisons import (
    DATA_CHANGED,
    DATA_DIGESTS,
    DIFFERENCE_NAMES,
    DIFFERENT,
    ENVIRONMENT_DIFFERS,
    FILES_MATCHED,
    FILES_NOT_RECORDED,
    IDENTICAL,
    CodeStep,
    DataStep,
    EnvironmentStep,
    Recorded,
    ReproductionResult,
    SourcesStep,
    Step,
    Target,
    compare_environment,
    compare_steps,
    recorded_tables,
    verdict,
)
from ml_project.errors import ConfigError, DataError, NotReproducedError, RegistryError
from ml_project.pipeline import FEATURE_SAMPLE_ROWS
from ml_project.problem import load_problem
from ml_project.settings import validate_settings
from ml_project.sources import SQL_PREFIX

if TYPE_CHECKING:
    from mlflow import MlflowClient


DRIVER_MODULE = "ml_project.rebuild"
REPRODUCTION = "reproduction"  # the run type of a reproduction run
OF_RUN_ID = "reproduction.of_run_id"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))/?$")


# ---------------------------------------------------------------- targets and lineage (edges)


@dataclasses.dataclass(frozen=True)
class Wanted:
    """The model to reproduce as the command names it: a version of `model_name` (by number or
    alias), or the model of run `run_id`."""

    model_name: str = ""
    version: str = ""
    alias: str = ""
    run_id: str = ""


def parse_model_uri(uri: str) -> Wanted:
    """`models:/name/3` -> version "3" of name; `models:/name@champion` -> its alias."""
    match = _MODEL_URI.match(uri.strip())
    if not match:
        raise ConfigError(
            f"--model-uri {uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>."
        )
    return Wanted(match["name"], match["version"] or "", match["alias"] or "")


def resolve_target(client: MlflowClient, wanted: Wanted) -> Target:
    """The registered version (by number or alias: loading.resolve_model_uri) or the run; a
    RegistryError if not found."""
    from mlflow.exceptions import MlflowException

    model_name, version, alias, run_id = dataclasses.astuple(wanted)
    if model_name and (version or alias):
        uri = f"models:/{model_name}/{version}" if version else f"models:/{model_name}@{alias}"
        pinned = loading.resolve_model_uri(client, uri, model_name=model_name)
        return Target(
            run_id=tag.run_of(pinned.tags, pinned.run_id) or "",  # a copy's: the training run
            model_uri=f"models:/{pinned.name}/{pinned.version}",
            model_name=pinned.name,
            version=pinned.version,
        )
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(
            f"The registry has no run {run_id} ({exc.message.splitlines()[0]}). "
            "`ml-project show --env ENV` lists an env's versions, their aliases and verdicts."
        ) from exc
    if run.data.tags.get(tag.RUN_TYPE) == REPRODUCTION:
        original = run.data.tags.get(OF_RUN_ID, "?")
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
        feature_sample=rebuild.read_sample(sample_path) if sample_path else None,
    )


def _artifact_file(client: MlflowClient, run_id: str, path: str, workdir: Path) -> Path | None:
    """A run artifact downloaded into `workdir`, or None when the run did not log it."""
    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(run_id, path, str(workdir))
    except (OSError, MlflowException):  # an absent artifact
        return None
    return Path(local) if Path(local).is_file() else None


def _artifact_text(client: MlflowClient, run_id: str, path: str, workdir: Path) -> str | None:
    local = _artifact_file(client, run_id, path, workdir)
    return local.read_text(encoding="utf-8") if local else None


def require_protocol(target: Target, tags: dict[str, str], protocol: str) -> None:
    """A NotReproducedError unless the run was trained under the rebuild protocol spoken here."""
    key = tag.REBUILD_PROTOCOL
    recorded = tags.get(key)
    if recorded == protocol:
        return
    commit = tags.get(tag.GIT_COMMIT, "")[:12] or "(not recorded)"
    why = (
        f"an older rebuild protocol (its run has no tag {key}: it predates problems/ "
        "and the rebuild driver that each commit runs itself)"
        if recorded is None
        else f"rebuild protocol {recorded!r} (tag {key})"
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
    try:
        settings = validate_settings(yaml.safe_load(settings_yaml))
        return loading.trusted_types(load_problem(settings, root))
    except (ConfigError, DataError, ImportError, TypeError, ValueError):
        return list(estimators.TRUSTED_TYPES)


def download_model(
    target: Target, workdir: Path, tracking_uri: str, trusted: list[str], *, digests: str = ""
) -> dict[str, Any]:
    """The registered model's skops file, checked against the sha256 its training recorded
    (`digests`) and the project's allow-list `trusted`, and that list (not the one its MLmodel
    declares) for the rebuild to load it with; or, when the files are not the skops file
    training wrote (replaced in the artifact store, or written outside ml-project), why they
    were refused: the model then differs."""
    import mlflow

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
    try:
        path = loading.verified_file(local, trusted, uri=target.model_uri, recorded=digests)
    except RegistryError as exc:
        return {"refused": str(exc)}
    except Exception as exc:  # noqa: BLE001 - any unreadable file (zip, MLmodel, schema)
        return {"refused": f"Model {target.model_uri} is not a readable skops file ({exc})."}
    files = FILES_MATCHED if digests else FILES_NOT_RECORDED
    return {"path": str(path), "trusted_types": list(trusted), "files": files}


# ---------------------------------------------------------------- git checkout (edge)


def repository(root: Path) -> tuple[Path, str]:
    """The git repository holding the project at `root`, and the project's path inside it."""
    top = lineage.git(root, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        raise RegistryError(
            f"{root} is not inside a git repository: reproduce checks the recorded commit out of "
            "the project's repository, so run it from a clone of that repository."
        )
    prefix = lineage.git(root, "rev-parse", "--show-prefix").stdout.strip()
    return Path(top.stdout.strip()), prefix


def require_commit(repo: Path, commit: str, *, what: str) -> None:
    """A RegistryError unless `commit` is a commit object of `repo`."""
    if not re.fullmatch(r"[0-9a-f]{7,64}", commit or ""):
        raise RegistryError(
            f"{what} records no git commit (git.commit={commit!r}): the code that trained it "
            "cannot be found, so it cannot be rebuilt."
        )
    if lineage.git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
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
    added = lineage.git(
        repo, "-c", "core.hooksPath=/dev/null", "worktree", "add", "--detach", "--quiet",
        str(path), commit,
    )  # fmt: skip
    try:
        if added.returncode != 0:
            raise RegistryError(
                f"Cannot check commit {commit} out of {repo}: {added.stderr.strip()}"
            )
        yield path
    finally:
        if added.returncode == 0:
            lineage.git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(holder, ignore_errors=True)
        lineage.git(repo, "worktree", "prune")


def run_driver(
    code: Path, request: dict[str, Any], workdir: Path, *, threads: str = ""
) -> dict[str, Any]:
    """Run the checkout's own `python -m ml_project.rebuild` in `code` (on `threads` OpenMP
    threads, the training's, when it recorded them); its JSON answer."""
    request_path, answer_path = workdir / "request.json", workdir / "answer.json"
    request_path.write_text(json.dumps(request), encoding="utf-8")
    environ = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    if threads.isdigit():
        environ["OMP_NUM_THREADS"] = threads
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


# ---------------------------------------------------------------- the command


def reproduce_model(
    wanted: Wanted,
    *,
    root: Path,
    tolerance: float | None = None,
    strict: bool = False,
    tables: dict[str, Path] | None = None,
    from_source: bool = False,
) -> ReproductionResult:
    """Rebuild the target from its commit, config, seed and data (`tables`: moved copies,
    `--table`; else its snapshots, or today's sources with `from_source`), and compare step by
    step: the result whatever the verdict. RegistryError: no target, lineage or commit;
    DataError: a recorded file is gone; NotReproducedError: another rebuild protocol;
    ConfigError: `tables` names a table the run did not read."""
    started = time.perf_counter()
    client = tracking.connect(root)
    with progress.stage("resolve"):
        target = resolve_target(client, wanted)
    with tempfile.TemporaryDirectory(prefix="ml-project-reproduce-") as scratch:
        workdir = Path(scratch)
        with progress.stage("read recorded"):
            recorded = read_recorded(client, target, workdir)
        require_protocol(target, recorded.tags, lineage.REBUILD_PROTOCOL)
        overrides, data_origin = _data_read(target, recorded, tables, workdir, client, from_source)
        commit = recorded.tags.get(tag.GIT_COMMIT, "")
        repo, prefix = repository(root)
        require_commit(repo, commit, what=target.describe())
        with progress.stage("environment"):
            environment = _environment_step(recorded)
        answer = None
        if not (strict and environment.status == DIFFERENT):
            with progress.stage("rebuild"):
                answer = _rebuild(root, client, target, recorded, workdir, repo, prefix, overrides)
    steps: list[Step] = [environment]
    if answer is not None:
        rebuilt = [_code_step(commit, answer), *_compare(recorded, answer)]
        steps += rebuilt if from_source or tables else subset_data_step(recorded.tags, rebuilt)
    judged = _judge(answer, recorded, target, commit, steps, tolerance)
    result = ReproductionResult(
        target=target,
        commit=commit,
        tolerance=tolerance,
        strict=strict,
        verdict=judged.verdict,
        first_difference=judged.first_difference,
        steps=tuple(steps),
        warnings=(data_origin, *_warnings(recorded.tags, commit, environment, steps)),
        experiment_id=recorded.experiment_id,
        tracking_uri=tracking.redact(client.tracking_uri),
        seconds=time.perf_counter() - started,
        error=judged.error,
        traceback=judged.traceback,
    )
    return log_reproduction(client, recorded, result)


def _rebuild(
    root: Path,
    client: MlflowClient,
    target: Target,
    recorded: Recorded,
    workdir: Path,
    repo: Path,
    prefix: str,
    overrides: dict[str, str | None],
) -> dict[str, Any]:
    """The registered model downloaded, the commit checked out, and its driver's answer."""
    trusted = project_trusted_types(recorded.settings_yaml, root)
    digests = recorded.tags.get(tag.MODEL_FILES, "")
    registered_model = download_model(
        target, workdir, client.tracking_uri, trusted, digests=digests
    )
    with checkout(repo, recorded.tags.get(tag.GIT_COMMIT, "")) as code:
        project = code / prefix
        request = {
            "protocol": lineage.REBUILD_PROTOCOL,
            "settings_yaml": recorded.settings_yaml,
            "data_root": str(Path(root).resolve()),
            "code_root": str(project),
            "tables": overrides,
            "expect_data": {key: recorded.tags.get(f"data.{key}") for key in DATA_DIGESTS},
            "registered_model": {
                k: v for k, v in registered_model.items() if k in ("path", "trusted_types")
            },
            "sample_rows": FEATURE_SAMPLE_ROWS,
        }
        threads = recorded.tags.get(f"env.{lineage.OPENMP_THREADS}", "")
        answer = run_driver(project, request, workdir, threads=threads)
    answer["registered_artifact"] = target.model_uri
    answer["registered_refused"] = registered_model.get("refused", "")
    answer["registered_files"] = registered_model.get("files", "")
    if registered_model.get("path") and not recorded.tags.get(tag.MODEL_CONTENT):
        answer["registered_content"] = model_digest.file_content_digest(
            Path(registered_model["path"])
        )
    return answer


def _code_step(commit: str, answer: dict[str, Any]) -> CodeStep:
    return CodeStep(
        IDENTICAL,
        commit=commit,
        protocol=answer.get("protocol"),
        ml_project_version=(answer.get("code") or {}).get("version"),
        seconds=answer.get("timings"),
    )


def _compare(recorded: Recorded, answer: dict[str, Any]) -> list[Step]:
    with progress.stage("compare"):
        task = recorded.tags.get(tag.TASK, "")
        order = list(metrics.metrics_of(task)) if task in tag.TASKS else []
        return compare_steps(
            recorded,
            answer,
            metric_order=order,
            artifact=answer.get("registered_artifact", ""),
            refused=answer.get("registered_refused", ""),
            files=answer.get("registered_files", ""),
        )


class Judgement(NamedTuple):
    verdict: str
    first_difference: str
    error: str = ""
    traceback: str = ""  # the old code's, when it raised


def _judge(
    answer: dict[str, Any] | None,
    recorded: Recorded,
    target: Target,
    commit: str,
    steps: list[Step],
    tolerance: float | None,
) -> Judgement:
    """The verdict; no answer: --strict refused to rebuild in another environment."""
    if answer is None:
        error = "--strict: the software differs from the one recorded at training"
        return Judgement(ENVIRONMENT_DIFFERS, "environment differs", error)
    if answer.get("error"):
        return _driver_failure(answer, recorded, target, commit)
    data = next((step for step in steps if step.step == "data"), None)
    if answer.get("stopped") == "data" or (data is not None and data.status == DIFFERENT):
        return Judgement(DATA_CHANGED, DIFFERENCE_NAMES["data"])
    return Judgement(*verdict(steps, tolerance=tolerance))


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
    return {
        name: str(tables[name].expanduser().resolve()) if tables.get(name) else None
        for name in names
    }


def _environment_step(recorded: Recorded) -> EnvironmentStep:
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


def _warnings(
    tags: dict[str, str], commit: str, environment: EnvironmentStep, steps: list[Step]
) -> list[str]:
    return [
        *_dirty_warnings(tags, commit),
        *_environment_warnings(environment),
        *_sources_warnings(steps),
    ]


def _dirty_warnings(tags: dict[str, str], commit: str) -> list[str]:
    if tags.get(tag.GIT_DIRTY) != "true":
        return []
    return [
        f"the original was trained from uncommitted changes on top of {commit[:12]}; "
        "they are not in the commit, so the rebuild may differ"
    ]


def _environment_warnings(step: EnvironmentStep) -> list[str]:
    warnings = [
        f"{item.what} was {item.recorded} at training, is {item.now} now"
        for item in step.key_packages
    ]
    if step.lock:
        shown = ", ".join(f"{i.what} {i.recorded} -> {i.now}" for i in step.lock[:5])
        more = f" and {len(step.lock) - 5} more" if len(step.lock) > 5 else ""
        warnings.append(
            f"{len(step.lock)} pin(s) of the recorded requirements.lock differ: {shown}{more}"
        )
    return warnings


def _sources_warnings(steps: list[Step]) -> list[str]:
    """A changed table file whose rows and columns used are still identical is only a warning."""
    status = {step.step: step for step in steps}
    sources, data = status.get("sources"), status.get("data")
    if not isinstance(sources, SourcesStep) or sources.status != DIFFERENT:
        return []
    if data is None or data.status != IDENTICAL:
        return []
    changed = [name for name, entry in sources.files.items() if not entry.sha256_equal]
    return [
        f"the file(s) of table(s) {', '.join(changed)} changed since training, but the rows "
        "and columns the model uses are identical"
    ]


def _driver_failure(
    answer: dict[str, Any], recorded: Recorded, target: Target, commit: str
) -> Judgement:
    """A failure inside the old code: a missing file (DataError), changed data, or a crash."""
    error = answer["error"]
    step, message = error.get("step"), f"{error.get('type')}: {error.get('message')}"
    short = commit[:12]
    if step == "sources":
        for name, source in (answer.get("sources") or {}).items():
            if is_local(source.get("path", "")) and not Path(source.get("path", "")).is_file():
                raise DataError(
                    f"{source.get('path')}: no such file. {target.describe()} was trained on "
                    f"table {name} read from {recorded.tags.get(f'data.table.{name}.path', '?')}"
                    f"; pass --table {name}=PATH to read a copy of it (its sha256 must still be "
                    f"{recorded.tags.get(f'data.table.{name}.sha256', '?')})."
                )
        why = f"the code of commit {short} cannot read the data any more ({message})"
        return Judgement(DATA_CHANGED, DIFFERENCE_NAMES["data"], why)
    if step == "data":
        why = f"the code of commit {short} cannot prepare today's data ({message})"
        return Judgement(DATA_CHANGED, DIFFERENCE_NAMES["data"], why)
    why = (
        f"the code of commit {short} failed at step {step!r} in this environment: "
        + " ".join(message.split())  # one line; the traceback goes to the report only
    )
    failed = f"the rebuild failed at step {step!r}"
    return Judgement(DIFFERENT, failed, why, error.get("traceback", ""))


# ---------------------------------------------------------------- the data read (snapshots)


def _data_read(
    target: Target,
    recorded: Recorded,
    tables: dict[str, Path] | None,
    workdir: Path,
    client: MlflowClient,
    from_source: bool,
) -> tuple[dict[str, str | None], str]:
    """Which file each table is read from (--table copies, else snapshots: snapshot_overrides)
    and the line saying so."""
    overrides = table_overrides(target, recorded.tags, tables or {})
    return snapshot_overrides(
        recorded.tags, overrides, workdir, client.tracking_uri, from_source=from_source
    )


def snapshot_overrides(
    tags: dict[str, str],
    overrides: dict[str, str | None],
    workdir: Path,
    tracking_uri: str,
    *,
    from_source: bool,
) -> tuple[dict[str, str | None], str]:
    """Each table read from the snapshot its run kept (downloaded into `workdir`) unless
    `from_source` or a --table copy; and a line saying which data the rebuild read."""
    if from_source:
        return overrides, "data: read from today's sources (--from-source), not the snapshots"
    kept = {
        name: tags.get(snapshots.table_tag(name, "snapshot"), "")
        for name, path in overrides.items()
        if not path
    }
    if not any(kept.values()):
        state = tags.get(snapshots.SNAPSHOT) or "none recorded"
        return overrides, (
            f"data: read from today's sources: the run kept no snapshot of its rows ({state}), "
            "so the data is not kept"
        )
    chosen = dict(overrides)
    for name, uri in kept.items():
        if uri:
            chosen[name] = str(_fetch_snapshot(name, uri, workdir, tracking_uri))
    from_copies = sorted(name for name, path in overrides.items() if path)
    unkept = sorted(name for name, uri in kept.items() if not uri)
    line = f"data: read from the snapshots kept at training ({', '.join(sorted(chosen_kept(kept)))}"
    if tags.get(snapshots.SNAPSHOT) == "subset":
        line += (
            ": the subset of rows the env sampled, so the sources and the row counts before "
            "sampling differ by design; the rows used are compared by their digests"
        )
    line += ")"
    if from_copies:
        line += f"; --table copies: {', '.join(from_copies)}"
    if unkept:
        line += f"; today's sources (not kept): {', '.join(unkept)}"
    return chosen, line + "; --from-source checks today's sources"


def chosen_kept(kept: dict[str, str]) -> list[str]:
    return [name for name, uri in kept.items() if uri]


BEFORE_SAMPLING = ("records", "unlabelled_dropped", "labelled")  # row counts a subset lacks


def subset_data_step(tags: dict[str, str], steps: list[Step]) -> list[Step]:
    """The data step of a rebuild from a subset snapshot (staging: the rows of its sample
    only): identical when every digest of the rows used is, and only the counts before
    sampling differ (the snapshot holds the sampled records by design)."""
    if tags.get(snapshots.SNAPSHOT) != "subset":
        return steps
    out: list[Step] = []
    for step in steps:
        if isinstance(step, DataStep) and step.status == DIFFERENT:
            same = all(pair.recorded == pair.rebuilt for pair in step.digests.values())
            counted = all(
                pair.recorded is None or pair.recorded == pair.rebuilt
                for key, pair in step.rows.items()
                if key not in BEFORE_SAMPLING
            )
            if same and counted:
                step = dataclasses.replace(step, status=IDENTICAL)
        out.append(step)
    return out


def _fetch_snapshot(name: str, uri: str, workdir: Path, tracking_uri: str) -> Path:
    """A table's snapshot file, or a DataError naming it and the way out."""
    try:
        return snapshots.fetch(uri, workdir / "snapshots" / name, tracking_uri=tracking_uri)
    except Exception as exc:  # an artifact store or bucket error: said in one line
        raise DataError(
            f"The snapshot of table {name} ({uri}) cannot be read "
            f"({' '.join(str(exc).split())[:300]}); pass --from-source to read today's source, "
            f"or --table {name}=PATH for a copy."
        ) from exc


def is_local(path: str) -> bool:
    """A local file's path, not a URL or a query source (sources.Source's text)."""
    return "://" not in path and not path.startswith(SQL_PREFIX)


def log_reproduction(
    client: MlflowClient, recorded: Recorded, result: ReproductionResult
) -> ReproductionResult:
    """A `reproduction` run in the original's experiment, linked by tags; the version tagged."""
    import mlflow

    target = result.target
    tags = {
        tag.RUN_TYPE: REPRODUCTION,
        OF_RUN_ID: target.run_id,
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
        result = dataclasses.replace(result, reproduction_run_id=run.info.run_id)
        mlflow.log_dict(views.reproduction_data(result), "reproduction/report.json")
        if result.traceback:
            mlflow.log_text(result.traceback, "reproduction/traceback.txt")
        numbers = {
            "seconds": result.seconds,
            "reproduced": float(result.reproduced),
            "max_abs_prediction_diff": getattr(result.step("predictions"), "max_abs_diff", None),
            "max_abs_metric_diff": getattr(result.step("metrics"), "max_abs_diff", None),
        }
        mlflow.log_metrics({k: float(v) for k, v in numbers.items() if v is not None})
    if target.version:
        for key, value in (
            ("reproduction.verdict", result.verdict),
            ("reproduction.run_id", result.reproduction_run_id),
        ):
            client.set_model_version_tag(target.model_name, target.version, key, value)
    return result
