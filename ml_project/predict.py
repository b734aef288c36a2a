"""Batch scoring with a registered model: by default the env's `@champion`.

The logged model is the whole Pipeline: scoring takes the raw records (the signature's input
columns) and adds `prediction`, for a classifier `probability_<class>` per class and, binary,
`probability` (P(the second of `classes_`)); the task is the version's tag. Input is read in
chunks and the output written beside its place, then renamed. A batch holding the key columns
whose rows repeat a key is refused unless the caller allows it (`DuplicateKeys`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ml_project import loading, metrics, paths, tracking, validation
from ml_project.aside import CHECK_ASIDE as CHECK_ASIDE
from ml_project.aside import beside
from ml_project.data import iso_text, read_table, require_columns, with_iso_times
from ml_project.errors import DataError, ProjectError, RegistryError
from ml_project.progress import line as progress_line
from ml_project.vocabulary import TASK, TASKS, Task

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ml_project.settings import Settings


PREDICTION = "prediction"
PROBABILITY = "probability"  # binary: P(positive class); per class: probability_<class>
VERSION_COLUMNS = ("model_name", "model_version", "model_run_id")


@dataclass(frozen=True)
class LoadedModel:
    """A fitted Pipeline with the registry facts every scored row carries."""

    uri: str
    name: str
    version: str
    run_id: str
    model: Any
    input_types: dict[str, str]  # raw column -> "string" | "double" (the signature, in order)
    task: Task
    output_type: str = "double"  # the signature's type of `prediction` (string, long, ...)

    @property
    def classifier(self) -> bool:
        return self.task != "regression"

    @property
    def classes(self) -> list[Any]:
        """The classifier's classes in its probability columns' order (empty for a regressor)."""
        return list(self.model.classes_) if self.classifier else []


@dataclass(frozen=True)
class ScoringSummary:
    input: str
    output: str
    rows: int
    seconds: float
    model_uri: str
    model_name: str
    model_version: str
    model_run_id: str
    key_columns: tuple[str, ...] = ()  # the key columns checked (none: the batch lacks one)
    duplicate_key_rows: int | None = None  # rows repeating an earlier row's key (None: unchecked)
    rows_per_second: float = field(init=False)

    def __post_init__(self) -> None:
        speed = self.rows / self.seconds if self.seconds else float("inf")
        object.__setattr__(self, "rows_per_second", speed)


def summarise(
    loaded: LoadedModel,
    source: str,
    target: str,
    rows: int,
    *,
    start: float,
    keys: DuplicateKeys | None,
    model_uri: str = "",
) -> ScoringSummary:
    """The summary of scoring `rows` rows since `start` (time.perf_counter)."""
    seconds = time.perf_counter() - start
    progress_line("scoring", seconds, rows=rows, detail=f"{source} -> {target}")
    return ScoringSummary(
        input=source,
        output=target,
        rows=rows,
        seconds=seconds,
        model_uri=model_uri or loaded.uri,
        model_name=loaded.name,
        model_version=loaded.version,
        model_run_id=loaded.run_id,
        key_columns=keys.columns if keys is not None else (),
        duplicate_key_rows=keys.rows if keys is not None else None,
    )


def probability_column(value: object) -> str:
    """`probability_<class>`, the class written as text."""
    return f"{PROBABILITY}_{value}"


def score_columns(task: str, classes: Iterable[object]) -> list[str]:
    """The prediction, then (binary) P(positive class), then one probability per class."""
    if task == "regression":
        return [PREDICTION]
    binary = [PROBABILITY] if task == "binary" else []
    return [PREDICTION, *binary, *(probability_column(value) for value in classes)]


def load_model(
    target: loading.ModelTarget,
    client: MlflowClient,
    *,
    root: Path,
    trusted: list[str],
    task: str | None = None,
) -> LoadedModel:
    """The sklearn Pipeline of `target`, loaded by skops with the project's allow-list
    `trusted` (loading.py), never the artifact's; its task is the version's (or its run's)
    task tag, `task` the fallback for a run's model. The project's `problems/` is made
    importable first: a problem's own classes inside the model load from there."""
    from mlflow.models.signature import ModelSignature

    from ml_project.problem import importable

    uri = target.uri
    model_task = model_task_of(target, client, fallback=task)
    importable(root)
    recorded = loading.recorded_digests(uri, client, target=target)
    with tempfile.TemporaryDirectory(prefix="ml-project-model-") as scratch:
        local = loading.model_files(client, target, Path(scratch))
        mlmodel = loading.read_mlmodel(local)
        model = loading.load_sklearn(uri, trusted, local=local, recorded=recorded, mlmodel=mlmodel)
    stated = mlmodel.get("signature")
    signature = ModelSignature.from_dict(stated) if isinstance(stated, dict) else None
    if signature is None:
        raise RegistryError(f"Model {uri} has no signature: its input columns are unknown.")
    input_types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    outputs = signature.outputs.inputs if signature.outputs is not None else []
    output_type = outputs[0].type.name if len(outputs) == 1 else "double"
    if model_task != "regression" and not hasattr(model, "predict_proba"):
        raise RegistryError(
            f"Model {uri} is tagged {TASK}={model_task} but has no predict_proba: it is not "
            "a classifier."
        )
    return LoadedModel(
        uri, target.name, target.version, target.run_id, model, input_types, model_task, output_type
    )


def model_task_of(
    target: loading.ModelTarget, client: MlflowClient, *, fallback: str | None
) -> Task:
    """The task of `target`: its version's tag, else its run's (else `fallback`, for a run's
    model only); a RegistryError when unknown."""
    task = target.tag(client, TASK) or (fallback if not target.version else "")
    if task in TASKS:
        return task
    if not task:
        raise RegistryError(
            f"Model {target.uri}: neither the version nor its training run has a {TASK} tag, "
            "so whether it classifies or regresses is unknown (trained before task kinds "
            "existed?). Retrain it with this code."
        )
    raise RegistryError(
        f"Model {target.uri} is tagged {TASK}={task!r}; known tasks: {', '.join(TASKS)}."
    )


def load_champion(
    settings: Settings, client: MlflowClient, *, root: Path, model_uri: str | None
) -> tuple[LoadedModel, list[str]]:
    """The model at `model_uri` (default: the env's champion) and the allow-list it loaded with."""
    target = loading.resolve_model_uri(client, model_uri, model_name=settings.model_name)
    return load_target(settings, client, target, root=root)


def load_target(
    settings: Settings, client: MlflowClient, target: loading.ModelTarget, *, root: Path
) -> tuple[LoadedModel, list[str]]:
    """The model at a resolved `target`, loaded with the problem's allow-list, and that list."""
    from ml_project.problem import load_problem

    trusted = loading.trusted_types(load_problem(settings, root))
    loaded = load_model(target, client, root=root, trusted=trusted, task=settings.task)
    return loaded, trusted


def typed_input(frame: pd.DataFrame, input_types: dict[str, str], *, source: str) -> pd.DataFrame:
    """The model's raw columns of `frame`, typed as its signature says (pure): a timestamp
    column the signature reads as text becomes ISO 8601 text (data.iso_text)."""
    missing = [name for name in input_types if name not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} that the model needs "
            f"(it takes {', '.join(input_types)})."
        )
    typed = {}
    for name, kind in input_types.items():
        values = frame[name]
        if kind == "double":
            converted = pd.to_numeric(values, errors="coerce")
            bad = converted.isna() & values.notna()
            if bad.any():
                example = values[bad].iloc[0]
                raise DataError(
                    f"{source}: column {name} must be numeric; {int(bad.sum())} value(s) are not "
                    f"(e.g. {example!r})."
                )
            typed[name] = converted.astype("float64")
        else:  # text; a native datetime as the ISO 8601 text the model reads
            typed[name] = iso_text(values)
    return pd.DataFrame(typed, index=frame.index)


def predictions(loaded: LoadedModel, rows: pd.DataFrame, *, source: str) -> metrics.Predictions:
    """The model's prediction and, for a classifier, class probabilities on typed `rows`
    (read from `source`); DataError if the model's input rules refuse some of them."""
    from ml_project.input_rules import InputRuleError

    try:
        return metrics.predict(loaded.model, rows, loaded.task)
    except InputRuleError as exc:  # the model's own rules (or its problem's) refuse the rows
        raise DataError(f"{source}: {exc.message}") from exc


def score_frame(loaded: LoadedModel, frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """`frame` with the prediction, a classifier's probabilities, and the model's name,
    version and run id."""
    features = typed_input(frame, loaded.input_types, source=source)
    said = predictions(loaded, features, source=source)
    scored = frame.copy()
    scored[PREDICTION] = said.prediction
    if said.probabilities is not None:
        assert said.classes is not None  # a classifier's Predictions name its classes
        if loaded.task == "binary":
            scored[PROBABILITY] = said.probabilities[:, 1]
        for index, value in enumerate(said.classes):
            scored[probability_column(value)] = said.probabilities[:, index]
    scored["model_name"] = loaded.name
    scored["model_version"] = loaded.version
    scored["model_run_id"] = loaded.run_id
    return scored


@dataclass
class DuplicateKeys:
    """The rows of a batch whose key repeats an earlier row's, counted chunk by chunk (pure).

    Each distinct key is kept as a 64-bit hash of its text (`pandas.util.hash_pandas_object`)
    in sorted runs merged as they grow: 8 bytes a key, never the rows. A key is compared as
    text, so 5, 5.0 and "5" are one key whatever type a CSV chunk read it as; a row with a
    missing key value names no record and is not counted. Two different keys share a hash with
    a chance of about n^2 / 2^65 for n keys (1 in 370,000 for ten million).
    """

    columns: tuple[str, ...]
    rows: int = 0  # rows whose key an earlier row already had
    example: str = ""  # the first such key, e.g. "id=1007"
    _runs: list[np.ndarray] = field(default_factory=list, repr=False, metadata={"json": False})

    @classmethod
    def of_batch(cls, columns: Iterable[str], key_columns: Sequence[str]) -> DuplicateKeys | None:
        """A counter when the batch's `columns` hold every key column, else None."""
        present = set(columns)
        if not key_columns or not all(name in present for name in key_columns):
            return None
        return cls(tuple(key_columns))

    def add(self, chunk: pd.DataFrame) -> None:
        """Count one chunk's rows whose key a row before them had."""
        keys = chunk[list(self.columns)]
        keys = keys[keys.notna().all(axis=1).to_numpy()]
        text = pd.DataFrame({name: _key_text(keys[name]) for name in self.columns})
        hashes = pd.util.hash_pandas_object(text, index=False).to_numpy()
        repeats = pd.Series(hashes).duplicated().to_numpy() | self._seen(hashes)
        found = int(repeats.sum())
        if found and not self.example:
            row = keys.iloc[int(np.flatnonzero(repeats)[0])]
            self.example = ", ".join(f"{name}={row[name]}" for name in self.columns)
        fresh = np.sort(hashes[~repeats])
        if fresh.size:
            self._runs.append(fresh)
            while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
                newest = self._runs.pop()
                self._runs[-1] = np.union1d(self._runs[-1], newest)
        self.rows += found

    def _seen(self, hashes: np.ndarray) -> np.ndarray:
        seen = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            seen |= run[at] == hashes
        return seen

    def describe(self, source: str) -> str:
        """`source`: how many rows repeat a key, the key columns and an example."""
        return (
            f"{source}: {self.rows} row(s) repeat the key of an earlier row (key columns "
            f"{', '.join(self.columns)}, data.key_columns; e.g. {self.example})"
        )


def repeated_keys_error(described: str) -> DataError:
    """Why a batch whose rows repeat keys is refused (`described`: DuplicateKeys.describe)."""
    return DataError(
        f"{described}: each row of a batch must be a different record, or its scores join back "
        "to the wrong rows and count twice downstream. Nothing was written. Keep one row per "
        "key, or pass --allow-duplicate-keys to score every row all the same."
    )


def _key_text(values: pd.Series) -> pd.Series:
    """A key column as text, a whole float as an integer (a CSV chunk with a gap reads 5 as
    5.0)."""
    text = values.astype("str")
    if pd.api.types.is_float_dtype(values.dtype):
        number = values.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(number) & (np.floor(number) == number) & (np.abs(number) < 2.0**63)
        text[whole] = number[whole].astype(np.int64).astype(str)
    return text


def read_chunks(path: Path, *, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`path` (CSV, zipped CSV or Parquet) in chunks of at most `chunk_rows` rows."""
    if not path.is_file() or path.stat().st_size == 0:
        read_table(path)  # raises the same clear DataError as training
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        try:
            reader = pq.ParquetFile(path)
            for batch in reader.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
        except OSError as exc:
            raise DataError(f"{path}: the Parquet file cannot be read ({exc}).") from exc
        return
    try:
        compression = "zip" if suffix.endswith(".zip") else "infer"
        yield from pd.read_csv(path, chunksize=chunk_rows, compression=compression)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: the file is not UTF-8 text ({exc.reason}).") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise DataError(f"{path}: the file cannot be read as CSV ({exc}).") from exc


@contextmanager
def appending(path: Path, *, parquet: bool) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A function appending chunks to the file `path` (Parquet or CSV), closed at the end."""
    writer: pq.ParquetWriter | None = None
    first = True

    def write(chunk: pd.DataFrame) -> None:
        nonlocal writer, first
        if parquet:
            table = pa.Table.from_pandas(
                chunk, schema=None if writer is None else writer.schema, preserve_index=False
            )
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        else:
            chunk.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first = False

    try:
        yield write
    finally:
        if writer is not None:
            writer.close()


# A chunk's model-input check (great-expectations: its import, the suite's build and the check
# take about as long as the model's own scoring of the chunk) runs in a forked child on the other
# core while this process scores the chunk (aside.beside); the chunk's scores are written only
# once the child says the check passed. This process never imports great-expectations; each child
# does (~1 s of CPU a chunk, beside the scoring). Elsewhere than on Linux, or with
# ML_PROJECT_CHECK_ASIDE=0, each check runs here before its chunk is scored.
@contextmanager
def checked(
    check: Callable[[pd.DataFrame], None], chunk: pd.DataFrame, *, aside: bool
) -> Iterator[Callable[[], None]]:
    """A function that returns once `check(chunk)` passed and raises what it raised: the check
    runs in a forked child when `aside` (the caller scores the chunk meanwhile), else here at
    once. A child still running when the block ends is stopped."""
    with beside(lambda: check(chunk), what="the model-input check of a chunk", aside=aside) as done:
        yield done


def score_file(
    loaded: LoadedModel | Callable[[], LoadedModel],
    *,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 100_000,
    check_chunk: Callable[[pd.DataFrame], None] | None = None,
    progress: bool | None = None,
    key_columns: Sequence[str] = (),
    allow_duplicate_keys: bool = False,
) -> ScoringSummary:
    """Score `input_path` chunk by chunk into `output_path`; nothing is left behind on error.

    When the batch holds every one of `key_columns`, a row whose key repeats an earlier row's
    refuses the batch (DataError, after counting the rest of the file's keys, unscored) unless
    `allow_duplicate_keys`; the summary says how many rows repeat a key either way. `loaded`
    may be a function loading the model: it is called once the first chunk's check has started
    beside it (a small batch's load overlaps the check's import of great-expectations).
    """
    model = _once(loaded)
    parquet = output_path.suffix.lower() in (".parquet", ".pq")
    if not parquet and output_path.suffix.lower() != ".csv":
        raise DataError(f"{output_path}: the output must end in .parquet or .csv.")
    start = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(desc=f"scoring {input_path.name}", unit=" rows", disable=not show, file=sys.stderr)
    rows = 0
    keys: DuplicateKeys | None = None
    with (
        bar,
        paths.replaced(output_path, option="--output") as temporary,
        appending(temporary, parquet=parquet) as write,
    ):
        for chunk in read_chunks(input_path, chunk_rows=chunk_rows):
            keys = keys if rows else DuplicateKeys.of_batch(chunk.columns, key_columns)
            rows += len(chunk)
            bar.update(len(chunk))
            if keys is not None:
                keys.add(chunk)
                if keys.rows and not allow_duplicate_keys:
                    continue  # refused below, once the rest of the file's keys are counted
            write(checked_scores(model, chunk, check_chunk, source=str(input_path)))
            progress_line("scored", bar.format_dict["elapsed"], rows=rows, detail=str(input_path))
        if rows == 0:
            raise DataError(f"{input_path}: the file has a header but no rows.")
        if keys is not None and keys.rows and not allow_duplicate_keys:
            raise repeated_keys_error(keys.describe(str(input_path)))
    return summarise(model(), str(input_path), str(output_path), rows, start=start, keys=keys)


def _once(loaded: LoadedModel | Callable[[], LoadedModel]) -> Callable[[], LoadedModel]:
    """`loaded`, or what the function `loaded` returns on its first call, on every call."""
    if isinstance(loaded, LoadedModel):
        return lambda: loaded
    cache: list[LoadedModel] = []

    def model() -> LoadedModel:
        if not cache:
            cache.append(loaded())
        return cache[0]

    return model


def checked_scores(
    model: Callable[[], LoadedModel],
    chunk: pd.DataFrame,
    check: Callable[[pd.DataFrame], None] | None,
    *,
    source: str,
) -> pd.DataFrame:
    """`score_frame` of a chunk that passed `check` (checked beside its scoring); the check's
    refusal comes first, as when the check ran before the model."""
    if check is None:
        return score_frame(model(), chunk, source=source)
    with checked(check, chunk, aside=True) as verdict:
        try:
            scored = score_frame(model(), chunk, source=source)
        except DataError:
            verdict()  # the suite's refusal, if it refuses the chunk too
            raise
        verdict()
    return scored


def input_checker(settings: Settings, root: Path, *, source: str) -> Callable[[pd.DataFrame], None]:
    """The model-input expectation suite as a per-chunk check (DataError on failure)."""
    columns = settings.features.columns
    validate = validation.TableValidator(validation.MODEL_INPUT, settings=settings, root=root)

    def check(chunk: pd.DataFrame) -> None:
        require_columns(chunk, columns, table=source)
        rows = with_iso_times(chunk[columns], settings.features.datetime)  # as the model reads
        report = validate(rows, source=source)
        if not report.success:
            raise DataError(validation.failure_message([report], context=f" for {source}"))

    return check


def run_batch_scoring(
    settings: Settings,
    *,
    root: Path,
    input_path: Path,
    output_path: Path,
    model_uri: str | None,
    chunk_rows: int,
    allow_duplicate_keys: bool = False,
) -> ScoringSummary:
    """Load the model (default: the env's champion), check each chunk, score, write.

    MLflow is imported, the store opened and the version resolved beside the first chunk's
    check, then the version's files are checked and loaded (a small batch's fixed cost is
    imports and the store's opening: these overlap the check's import of great-expectations in
    the forked child, which needs none of them). What the registry says still comes first: a
    missing store or champion is the error even when the input cannot be read (`registry_first`).
    """
    registry = _Registry(settings, root, model_uri)

    def load() -> LoadedModel:
        client, target = registry()
        return load_target(settings, client, target, root=root)[0]

    with registry_first(registry):
        return score_file(
            load,
            input_path=input_path,
            output_path=output_path,
            chunk_rows=chunk_rows,
            check_chunk=input_checker(settings, root, source=str(input_path)),
            key_columns=settings.data.key_columns,
            allow_duplicate_keys=allow_duplicate_keys,
        )


@dataclass
class _Registry:
    """The store's client and the version `model_uri` names, looked up once, on first call."""

    settings: Settings
    root: Path
    model_uri: str | None
    tried: bool = False
    _found: list[tuple[MlflowClient, loading.ModelTarget]] = field(default_factory=list)

    def __call__(self) -> tuple[MlflowClient, loading.ModelTarget]:
        if not self._found:
            self.tried = True
            client = tracking.connect(self.root, write=False)  # scoring writes nothing
            name = self.settings.model_name
            target = loading.resolve_model_uri(client, self.model_uri, model_name=name)
            self._found.append((client, target))
        return self._found[0]


@contextmanager
def registry_first(registry: _Registry) -> Iterator[None]:
    """A command error raised before `registry` was consulted (an input that cannot be read, a
    batch refused before its first chunk was scored) waits for it: a store or champion that
    is missing is said instead, as if it had been looked up first."""
    try:
        yield
    except ProjectError:
        if not registry.tried:
            registry()
        raise
