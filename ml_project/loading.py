"""Loading a registered model: what is trusted comes from the project's code, not the artifact.

A model's files are data written by whoever can write the registry and its artifact store; what
a loader lets them run is decided here. Only the skops format loads (pickle and cloudpickle are
refused: loading them runs any code the file names), and skops is given the project's
allow-list (the problem's `trusted_types`, `estimators.TRUSTED_TYPES`, the input rules' step),
never the `skops_trusted_types` the artifact's own MLmodel declares. A file naming any other type is
refused before it is loaded.

The files are also the ones training uploaded: the training run records the sha256 of MLmodel
and of the skops file (`MODEL_FILES`, copied onto the version), and every loader refuses files
whose digests differ from that record (a model replaced in the artifact store after training).
A model with no record (logged before ml-project kept one) loads unchecked.

MLflow, skops, scikit-learn and MLflow's model classes are imported where they are used, not
with this module: `predict` imports them while the first chunk's check runs beside it in a
forked child (predict.py), which needs none of them. SciPy's stats (and with it `scipy.special`),
which both need, is imported here, before MLflow: skops' import names each SciPy ufunc by walking
`sys.modules` in import order until it finds it, so with SciPy ahead of MLflow's ~2,000 modules
the walk stops early (0.5-1 s less CPU in every process that loads a model; the names it finds
are the same).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import scipy.stats  # noqa: F401 - before mlflow: see above
import yaml

from ml_project import model_digest, tracking
from ml_project.errors import RegistryError
from ml_project.vocabulary import CHAMPION, LOGGED_MODEL_URI, MODEL_FILES, RUN_ID

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel

    from ml_project.problem import Problem

ALLOW_PICKLE = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


@dataclass(frozen=True)
class ModelTarget:
    """What a model URI names: a registered version (`name`, `version`, its `tags`) or a run's
    model (`name` and `version` empty)."""

    uri: str
    name: str
    version: str
    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def tag(self, client: MlflowClient, key: str) -> str:
        """The version's tag `key`, else its training run's ('' when neither has it)."""
        from mlflow.exceptions import MlflowException

        if self.tags.get(key):
            return self.tags[key]
        try:
            return client.get_run(self.run_id).data.tags.get(key, "") if self.run_id else ""
        except MlflowException:
            return ""


def resolve_model_uri(
    client: MlflowClient, uri: str | None, *, model_name: str, registry_only: bool = True
) -> ModelTarget:
    """The version or run behind `uri` (models:/NAME@ALIAS, models:/NAME/N, runs:/RUN/PATH;
    None: `model_name`'s champion), or a RegistryError when the registry has none. Any other
    URI (a folder, file://) is a RegistryError, or with `registry_only=False` a target without
    a version, a run or tags."""
    from mlflow.exceptions import MlflowException

    uri = uri or f"models:/{model_name}@{CHAMPION}"
    if uri.startswith("runs:/"):
        return ModelTarget(uri, "", "", uri.removeprefix("runs:/").split("/", 1)[0])
    if not uri.startswith("models:/"):
        if not registry_only:
            return ModelTarget(uri, "", "", "")
        raise RegistryError(
            f"Model URI {uri!r}: expected models:/NAME@ALIAS, models:/NAME/N or runs:/."
        )
    reference = uri.removeprefix("models:/")
    name, _, alias = reference.partition("@")
    version = ""
    if not alias and "/" in name:
        name, version = name.rsplit("/", 1)
    try:
        if alias:
            found = client.get_model_version_by_alias(name, alias)
        else:
            found = client.get_model_version(name, version)
    except (MlflowException, ValueError, TypeError) as exc:
        what = f"alias @{alias}" if alias else f"version {version}"
        raise RegistryError(
            f"The registry has no model {name} {what} ({uri}): has the env trained and "
            "promoted a champion yet? `ml-project show --env ENV` lists versions and aliases."
        ) from exc
    tags = dict(found.tags or {})
    run_id = found.run_id or tags.get(RUN_ID, "")
    return ModelTarget(uri, found.name, str(found.version), run_id, tags)


def trusted_types(problem: Problem) -> list[str]:
    """What skops may instantiate: the problem's types and the platform's (pure)."""
    from ml_project import estimators, input_rules

    return list(
        dict.fromkeys(
            [*problem.trusted_types, *estimators.TRUSTED_TYPES, *input_rules.TRUSTED_TYPES]
        )
    )


def download(uri: str, destination: Path | None = None) -> Path:
    """The model's files (MLmodel and the serialized model) in a local folder."""
    from mlflow.artifacts import download_artifacts

    try:
        return Path(
            download_artifacts(
                artifact_uri=uri, dst_path=None if destination is None else str(destination)
            )
        )
    except Exception as exc:
        raise RegistryError(f"Cannot read the files of model {uri}: {exc}") from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_mlmodel(local: Path) -> dict[str, Any]:
    """The MLmodel file in `local`, parsed (by libyaml when PyYAML has it: the same data)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load((local / "MLmodel").read_text(encoding="utf-8"), Loader=loader)
    return data if isinstance(data, dict) else {}


def _skops_flavor(
    local: Path, *, uri: str, mlmodel: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """MLmodel's sklearn flavor (`mlmodel`: the file already parsed), once it names a skops
    file; RegistryError otherwise."""
    mlmodel = read_mlmodel(local) if mlmodel is None else mlmodel
    flavor: dict[str, Any] = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    serialization = flavor.get("serialization_format", "pickle")
    if serialization != "skops" or not flavor.get("pickled_model"):
        raise RegistryError(
            f"Model {uri} is serialized as {serialization}: ml-project loads skops files only "
            "(loading a pickle runs whatever code the file names). Retrain it with ml-project."
        )
    return flavor


def file_digests(local: Path, *, uri: str = "", mlmodel: Mapping[str, Any] | None = None) -> str:
    """`MLmodel=<sha256>;<skops file>=<sha256>`: the files a loader reads from `local`."""
    name = str(_skops_flavor(local, uri=uri or str(local), mlmodel=mlmodel)["pickled_model"])
    return ";".join(f"{file}={_sha256(local / file)}" for file in ("MLmodel", name))


def uploaded_digests(location: str) -> tuple[str, str]:
    """`file_digests` of the model files as the artifact store holds them at `location` (a
    logged model's artifact location): MLmodel and the skops file it names, nothing else; and
    that skops file's content digest (model_digest.py), from the same one download."""
    with tempfile.TemporaryDirectory(prefix="ml-project-digests-") as scratch:
        local = fetch_files(location, Path(scratch), uri=location)
        name = str(_skops_flavor(local, uri=location)["pickled_model"])
        content = model_digest.file_content_digest(local / name)
        return file_digests(local, uri=location), content


def fetch_files(location: str, destination: Path | None, *, uri: str) -> Path:
    """MLmodel and the skops file it names (nothing else of the model's folder: not its copy
    of the code) from the artifact store at `location`, into the folder `destination`; with
    None, a local store's files where they are (MLflow then copies nothing)."""
    from mlflow.artifacts import download_artifacts

    into = None if destination is None else str(destination)
    mlmodel = download_artifacts(artifact_uri=f"{location}/MLmodel", dst_path=into)
    local = Path(mlmodel).parent
    name = str(_skops_flavor(local, uri=uri)["pickled_model"])
    download_artifacts(artifact_uri=f"{location}/{name}", dst_path=into)
    return local


def is_local(location: str) -> bool:
    """Whether an artifact `location` is a folder of this machine (a file store's)."""
    return urlparse(location).scheme in ("", "file")


def model_files(client: MlflowClient, target: ModelTarget, destination: Path) -> Path:
    """The files a loader reads (never writes) of `target`: a registered version's from its
    storage location (the registry is not asked again), read in place from a local store (a
    full disk or a copy's time spared), else copied into `destination`; a run's model folder
    as a whole."""
    if not target.version:
        return download(target.uri, destination)
    try:
        location = client.get_model_version_download_uri(target.name, target.version)
        into = None if is_local(location) else destination
        return fetch_files(location, into, uri=target.uri)
    except RegistryError:
        raise
    except Exception as exc:
        raise RegistryError(f"Cannot read the files of model {target.uri}: {exc}") from exc


def recorded_digests(
    uri: str, client: MlflowClient | None = None, *, target: ModelTarget | None = None
) -> str:
    """What the training run of `uri`'s model recorded of its files (MODEL_FILES): '' when it
    recorded nothing or `uri` is a local folder; RegistryError when the record is unreadable.
    `target`: `uri` already resolved (resolve_model_uri), not looked up again."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient()
    try:
        logged = LOGGED_MODEL_URI.match(uri)
        if logged:
            run_id = client.get_logged_model(logged.group(1)).source_run_id or ""
        elif uri.startswith(("models:/", "runs:/")):
            target = target or resolve_model_uri(client, uri, model_name="")
            if target.tags.get(MODEL_FILES):
                return target.tags[MODEL_FILES]
            run_id = target.run_id
        else:
            return ""
        if not run_id:
            return ""
        return tracking.retry_locked(client.get_run, run_id).data.tags.get(MODEL_FILES, "")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":  # a run deleted, or of another store
            return ""
        raise RegistryError(
            f"Cannot read what the training of model {uri} recorded of its files: "
            f"{tracking.plain_error(exc)}"
        ) from exc


def check_digests(
    local: Path, recorded: str, *, uri: str, mlmodel: Mapping[str, Any] | None = None
) -> None:
    """RegistryError when the files in `local` are not those `recorded` at training."""
    if not recorded:
        return
    expected = dict(item.split("=", 1) for item in recorded.split(";") if "=" in item)
    digests = file_digests(local, uri=uri, mlmodel=mlmodel)
    actual = dict(item.split("=", 1) for item in digests.split(";"))
    differ = [name for name in ("MLmodel", *expected) if expected.get(name) != actual.get(name)]
    if differ:
        raise RegistryError(
            f"Model {uri}: its files are not the ones its training run uploaded "
            f"({', '.join(dict.fromkeys(differ))} differ from the sha256 recorded in the run's "
            f"{MODEL_FILES} tag): replaced in the artifact store after training? It was not "
            "loaded. Restore the files, or retrain and gate a new version."
        )


def verified_file(
    local: Path, trusted: list[str], *, uri: str, recorded: str | None = None
) -> Path:
    """The skops file in `local`, once its files match what their training run recorded
    (`recorded`: that record, looked up from `uri` when None) and every type it names is in
    `trusted`; RegistryError if the files were replaced, are not skops, or name a type the
    project does not trust."""
    import skops.io

    flavor = _skops_flavor(local, uri=uri)
    check_digests(local, recorded_digests(uri) if recorded is None else recorded, uri=uri)
    path: Path = local / flavor["pickled_model"]
    untrusted = sorted(set(skops.io.get_untrusted_types(file=str(path))) - set(trusted))
    if untrusted:
        raise untrusted_error(uri, untrusted)
    return path


def untrusted_error(uri: str, untrusted: list[str]) -> RegistryError:
    """Why model `uri`, naming the types `untrusted`, was not loaded."""
    return RegistryError(
        f"Model {uri} holds types the project does not trust: {', '.join(untrusted[:5])}"
        + (f" and {len(untrusted) - 5} more" if len(untrusted) > 5 else "")
        + ". It was not loaded. If they are yours, list them in the problem's "
        "trusted_types; if not, someone wrote this model outside ml-project."
    )


def own_copy(local: Path, trusted: list[str], *, uri: str) -> Path:
    """Make the downloaded files in `local` safe for MLflow's own loader (Spark's executors):
    the skops file checked against the project's allow-list, the MLmodel given that list in
    place of the artifact's, and the artifact's bundled code (copies of ml_project and
    problems/, which MLflow's loader would put first on sys.path) removed, so the classes the
    file names are the project's own."""
    verified_file(local, trusted, uri=uri)
    shutil.rmtree(local / "code", ignore_errors=True)
    path = local / "MLmodel"
    mlmodel = yaml.safe_load(path.read_text(encoding="utf-8"))
    for flavor in mlmodel.get("flavors", {}).values():
        if isinstance(flavor, dict):
            flavor.pop("code", None)
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = list(trusted)
    path.write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    return local


def load_sklearn(
    uri: str,
    trusted: list[str],
    *,
    local: Path | None = None,
    recorded: str | None = None,
    mlmodel: Mapping[str, Any] | None = None,
) -> Any:
    """The fitted model behind `uri` (its files in `local`, else downloaded to a scratch folder
    removed after the load), loaded by skops with the project's allow-list only, once its files
    match what their training run recorded (`recorded`: that record, looked up from `uri` when
    None; `mlmodel`: `local`'s MLmodel already parsed).

    skops reads the file's types once: its audit (the types of the file outside `trusted` and
    skops' own defaults, as `get_untrusted_types` finds them) refuses the file before anything
    in it is created."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    if local is None:
        with tempfile.TemporaryDirectory(prefix="ml-project-model-") as scratch:
            local = download(uri, Path(scratch))
            return load_sklearn(uri, trusted, local=local, recorded=recorded)
    mlmodel = read_mlmodel(local) if mlmodel is None else mlmodel
    flavor = _skops_flavor(local, uri=uri, mlmodel=mlmodel)
    recorded = recorded_digests(uri) if recorded is None else recorded
    check_digests(local, recorded, uri=uri, mlmodel=mlmodel)
    path = str(local / flavor["pickled_model"])
    try:
        return skops.io.load(path, trusted=trusted)
    except UntrustedTypesFoundException:  # which types, for the message (it holds only text)
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted))
        raise untrusted_error(uri, untrusted) from None


def pyfunc_of(uri: str, trusted: list[str]) -> PyFuncModel:
    """The model behind `uri` as an MLflow PyFuncModel, loaded as `load_sklearn` does (for
    MLflow's evaluator and scoring server, which would otherwise load it with the artifact's
    own allow-list); its downloaded files are removed once loaded."""
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="ml-project-model-") as scratch:
        local = download(uri, Path(scratch))
        model = load_sklearn(uri, trusted, local=local)
        return as_pyfunc(model, Model.load(str(local / "MLmodel")))


def as_pyfunc(model: Any, meta: Model) -> PyFuncModel:
    """A fitted sklearn model as the PyFuncModel MLflow would load from `meta` (its MLmodel)."""
    from mlflow.pyfunc import PyFuncModel
    from mlflow.sklearn import _SklearnModelWrapper

    return PyFuncModel(
        model_meta=meta,
        model_impl=_SklearnModelWrapper(model),  # type: ignore[no-untyped-call]
        model_id=meta.model_id,
    )


@contextmanager
def own_files() -> Iterator[None]:
    """MLflow's loader allowed while this process logs the model it has just fitted (MLflow
    loads the files it wrote to check the input example): nothing read from the store."""
    saved = os.environ.get(ALLOW_PICKLE)
    os.environ[ALLOW_PICKLE] = "true"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ALLOW_PICKLE, None)
        else:
            os.environ[ALLOW_PICKLE] = saved
