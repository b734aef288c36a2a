"""Batch scoring with a registered model: by default the env's `@champion`.

The logged model is the whole Pipeline, so scoring takes the raw records a client has at
scheduling time (the flight's columns and the origin's weather at the scheduled hour) and the
model builds its own features: one code path for training, batch and online scoring. Input is
read and written in chunks (bounded memory); the output appears only when complete (written
to a temporary file beside it, then renamed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ml_project.errors import DataError, RegistryError

PREDICTION = "prediction"
PROBABILITY = "probability"
VERSION_COLUMNS = ("model_name", "model_version", "model_run_id")
CHAMPION = "champion"


@dataclass(frozen=True)
class LoadedModel:
    """A fitted Pipeline with the registry facts every scored row carries."""

    uri: str
    name: str
    version: str
    run_id: str
    model: object
    input_types: dict[str, str]  # raw column -> "string" | "double" (the signature, in order)


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

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    def as_dict(self) -> dict:
        return {**self.__dict__, "rows_per_second": self.rows_per_second}


def default_model_uri(model_name: str) -> str:
    return f"models:/{model_name}@{CHAMPION}"


def load_model(uri: str, client) -> LoadedModel:
    """The sklearn Pipeline behind `uri` (models:/name@alias, models:/name/N or runs:/...)."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    name, version, run_id = _registry_facts(uri, client)
    try:
        model = mlflow.sklearn.load_model(uri)
        signature = get_model_info(uri).signature
    except MlflowException as exc:
        raise RegistryError(f"Cannot load model {uri}: {exc.message}") from exc
    if signature is None:
        raise RegistryError(f"Model {uri} has no signature: its input columns are unknown.")
    input_types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    return LoadedModel(uri, name, version, run_id, model, input_types)


def _registry_facts(uri: str, client) -> tuple[str, str, str]:
    """(model name, version, run id) named by a models:/ URI ('' for a runs:/ URI's version)."""
    from mlflow.exceptions import MlflowException

    if uri.startswith("runs:/"):
        run_id = uri.removeprefix("runs:/").split("/", 1)[0]
        return "", "", run_id
    if not uri.startswith("models:/"):
        raise RegistryError(
            f"Model URI {uri!r}: expected models:/NAME@ALIAS, models:/NAME/N or runs:/."
        )
    reference = uri.removeprefix("models:/")
    try:
        if "@" in reference:
            name, alias = reference.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = reference.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except (MlflowException, ValueError) as exc:
        raise RegistryError(
            f"The registry has no model at {uri} (has the env trained and promoted a champion "
            f"yet? `ml-project show --env ENV` lists versions and aliases)."
        ) from exc
    return version.name, str(version.version), version.run_id or ""


def typed_input(frame: pd.DataFrame, input_types: dict[str, str], *, source: str) -> pd.DataFrame:
    """The model's raw columns of `frame`, typed as its signature says (pure)."""
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
        else:
            typed[name] = values.astype("object").where(values.notna(), None)
    return pd.DataFrame(typed, index=frame.index)


def score_frame(loaded: LoadedModel, frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """`frame` with the prediction, the probability and the model's name, version and run id."""
    features = typed_input(frame, loaded.input_types, source=source)
    probability = loaded.model.predict_proba(features)[:, 1]
    scored = frame.copy()
    scored[PREDICTION] = decide(loaded.model, probability)
    scored[PROBABILITY] = probability
    scored["model_name"] = loaded.name
    scored["model_version"] = loaded.version
    scored["model_run_id"] = loaded.run_id
    return scored


def decision_rule(model) -> tuple[float, np.ndarray]:
    """The model's own threshold on the probability, and its two classes (negative first)."""
    final = model[-1] if hasattr(model, "steps") else model
    threshold = getattr(final, "threshold", 0.5)
    threshold = 0.5 if threshold == "auto" else threshold
    return threshold, final.classes_


def decide(model, probability: np.ndarray) -> np.ndarray:
    """Class labels from probabilities with the model's own threshold (as `model.predict`)."""
    threshold, classes = decision_rule(model)
    return classes[(probability >= threshold).astype(int)]


def read_chunks(path: Path, *, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """`path` (CSV, zipped CSV or Parquet) in chunks of at most `chunk_rows` rows."""
    from ml_project.data import read_table

    if not path.is_file() or path.stat().st_size == 0:
        read_table(path)  # raises the same clear DataError as training
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

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


class _Writer:
    """Appends scored chunks to a temporary file; `commit` renames it into place."""

    def __init__(self, output: Path):
        self.output = output
        self.temporary = output.with_name(f".{output.name}.partial-{os.getpid()}")
        self.parquet = output.suffix.lower() in (".parquet", ".pq")
        if not self.parquet and output.suffix.lower() != ".csv":
            raise DataError(f"{output}: the output must end in .parquet or .csv.")
        self._parquet_writer = None
        self._schema = None
        self._first = True

    def write(self, chunk: pd.DataFrame) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(chunk, schema=self._schema, preserve_index=False)
            if self._parquet_writer is None:
                self._schema = table.schema
                self._parquet_writer = pq.ParquetWriter(self.temporary, self._schema)
            self._parquet_writer.write_table(table)
        else:
            chunk.to_csv(
                self.temporary, mode="w" if self._first else "a", header=self._first, index=False
            )
        self._first = False

    def commit(self) -> None:
        if self._parquet_writer is not None:
            self._parquet_writer.close()
        os.replace(self.temporary, self.output)

    def discard(self) -> None:
        if self._parquet_writer is not None:
            self._parquet_writer.close()
        self.temporary.unlink(missing_ok=True)


def score_file(
    loaded: LoadedModel,
    *,
    input_path: Path,
    output_path: Path,
    chunk_rows: int = 100_000,
    check_chunk: Callable[[pd.DataFrame], None] | None = None,
    progress: bool | None = None,
) -> ScoringSummary:
    """Score `input_path` chunk by chunk into `output_path`; nothing is left behind on error."""
    from tqdm import tqdm

    start = time.perf_counter()
    writer = _Writer(output_path)
    rows = 0
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(desc=f"scoring {input_path.name}", unit=" rows", disable=not show, file=sys.stderr)
    try:
        for chunk in read_chunks(input_path, chunk_rows=chunk_rows):
            if check_chunk is not None:
                check_chunk(chunk)
            writer.write(score_frame(loaded, chunk, source=str(input_path)))
            rows += len(chunk)
            bar.update(len(chunk))
        if rows == 0:
            raise DataError(f"{input_path}: the file has a header but no rows.")
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        bar.close()
    return ScoringSummary(
        input=str(input_path),
        output=str(output_path),
        rows=rows,
        seconds=time.perf_counter() - start,
        model_uri=loaded.uri,
        model_name=loaded.name,
        model_version=loaded.version,
        model_run_id=loaded.run_id,
    )


def input_checker(settings, root: Path, *, source: str) -> Callable[[pd.DataFrame], None]:
    """The model-input expectation suite as a per-chunk check (DataError on failure)."""
    from ml_project import validation
    from ml_project.data import require_columns
    from ml_project.features import raw_columns

    columns = raw_columns(settings.features)
    validate = validation.TableValidator(validation.MODEL_INPUT, settings=settings, root=root)

    def check(chunk: pd.DataFrame) -> None:
        require_columns(chunk, columns, table=source)
        report = validate(chunk[columns], source=source)
        if not report.success:
            raise DataError(validation.failure_message([report], context=f" for {source}"))

    return check


def run_batch_scoring(
    settings,
    *,
    root: Path,
    input_path: Path,
    output_path: Path,
    model_uri: str | None,
    chunk_rows: int,
) -> ScoringSummary:
    """Load the model (default: the env's champion), check each chunk, score, write."""
    from ml_project import tracking

    client = tracking.connect(root)
    loaded = load_model(model_uri or default_model_uri(settings.tracking.model_name), client)
    return score_file(
        loaded,
        input_path=input_path,
        output_path=output_path,
        chunk_rows=chunk_rows,
        check_chunk=input_checker(settings, root, source=str(input_path)),
    )
