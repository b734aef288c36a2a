"""Batch scoring on Apache Spark: `mlflow.pyfunc.spark_udf` on the champion, Parquet in and out.

The same model, checks and output columns as `predict.py`. One pass runs the model-input suite
on every Arrow batch (`mapInPandas`) and counts the rows; a second scores with `spark_udf` on
checked local copies of the version's files (a classifier's second copy answers
`predict_proba`). The registry's model is never changed. pyspark (the `[spark]` extra) is
imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow.pyfunc
import pandas as pd
from mlflow.models import Model

import ml_project
from ml_project import loading, paths, progress, tracking
from ml_project.data import require_columns
from ml_project.errors import ConfigError, DataError, SetupError
from ml_project.input_rules import refusal_in
from ml_project.predict import (
    PREDICTION,
    PROBABILITY,
    VERSION_COLUMNS,
    DuplicateKeys,
    LoadedModel,
    ScoringSummary,
    load_champion,
    probability_column,
    repeated_keys_error,
    score_columns,
    summarise,
)
from ml_project.settings import problem_folder
from ml_project.tracking import PYSPARK_PANDAS_WARNING
from ml_project.validation import SUITES_FOLDER

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from ml_project.settings import Settings


# Spark's startup chatter off: warnings and errors only, without the two WARN lines every local
# session prints (loopback address, no native Hadoop library); the session then says ERROR only.
# (root and the repl logger at the same level, else Spark prints "Setting default log level".)
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = warn
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = error
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
"""


ARROW_BATCH_ROWS = 100_000


def is_uri(location: str) -> bool:
    """s3a://, abfss://, dbfs:/, hdfs://... rather than a local path."""
    return "://" in location or location.startswith("dbfs:/")


def check_parquet(location: str, *, role: str) -> None:
    """Spark scoring reads and writes Parquet only: a file, a folder of part files, a URI."""
    name = location.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith((".csv", ".csv.zip", ".zip", ".json")):
        raise ConfigError(
            f"--engine spark reads and writes Parquet only: the {role} {location} is not "
            f"Parquet (a .parquet file or a folder of part files). Use --engine pandas for CSV."
        )
    if role == "input" and not is_uri(location) and not Path(location).exists():
        raise DataError(f"{location}: no such file or folder.")
    if role == "output" and not is_uri(location):
        check_replaceable(Path(location))


# What a Parquet output written by Spark holds; a folder holding anything else is not replaced.
SPARK_OUTPUT_FILES = ("part-", ".part-", "_SUCCESS", "._SUCCESS", "_committed_", "_started_")


def check_replaceable(target: Path) -> None:
    """An existing output is replaced only if it is an earlier Spark Parquet output (a folder
    of part files): a file (Spark would put a folder in its place) or a folder holding anything
    else (a data folder, the project) is refused, untouched."""
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"--output {target} is an existing file: Spark writes a folder of Parquet part files, "
            "which would take the file's place, so it was left as it is. Name a new path, or "
            "remove the file first (or score it with --engine pandas, which writes one file)."
        )
    if not target.is_dir():
        return
    foreign = sorted(
        entry.name for entry in target.iterdir() if not entry.name.startswith(SPARK_OUTPUT_FILES)
    )
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise ConfigError(
            f"--output {target} is a folder holding files that are not a Spark Parquet output "
            f"({shown}): scoring would replace the whole folder, so it was left as it is. "
            "Name a new folder, or an earlier Spark output to replace."
        )


def check_spark() -> None:
    """pyspark importable and a Java runtime to start: else one paragraph, before any work."""
    if importlib.util.find_spec("pyspark") is None:
        raise SetupError(
            "--engine spark needs pyspark, which is not installed in this environment: "
            "pip install -e '.[spark]' (or use --engine pandas)."
        )
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        if not (Path(java_home) / "bin" / "java").is_file():
            raise SetupError(
                f"--engine spark needs Java 17, but JAVA_HOME={java_home} holds no bin/java: "
                "point JAVA_HOME at a Java 17 installation (or unset it to use java on PATH)."
            )
    elif shutil.which("java") is None:
        raise SetupError(
            "--engine spark needs Java 17, and neither JAVA_HOME nor PATH gives a java: "
            "install a Java 17 runtime (e.g. apt-get install openjdk-17-jre-headless)."
        )


def worker_python(master: str | None) -> None:
    """Spark's Python workers run this interpreter (else they may pick another and fail)."""
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    local = not under_spark_submit and (master is None or master.startswith("local"))
    for key in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"):
        if local:
            os.environ[key] = sys.executable
        else:
            os.environ.setdefault(key, sys.executable)
    # pyspark 4.3 warns about pandas 3 on import, in the driver and in every worker.
    warnings.filterwarnings("ignore", message=PYSPARK_PANDAS_WARNING, category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{PYSPARK_PANDAS_WARNING}:FutureWarning")


def spark_session(*, master: str | None, scratch: Path) -> tuple[SparkSession, bool]:
    """The active session (spark-submit, Databricks) or a new quiet one with its files in
    `scratch`; True as the second value when this call started it (and must stop it)."""
    worker_python(master)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    (scratch / "log4j2.properties").write_text(LOG4J2)
    java_options = (
        f"-Dlog4j2.configurationFile=file:{scratch / 'log4j2.properties'} "
        f"-Djava.io.tmpdir={scratch}"
    )
    builder = (
        SparkSession.builder.appName("ml-project predict")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # Large batches, like the pandas path's chunks: each one runs the suite once.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    )
    if master:
        builder = builder.master(master)
    # Block-manager and shuffle files: the JVM reads SPARK_LOCAL_DIRS when it starts (the
    # `spark.local.dir` setting would warn that a cluster manager may override it).
    previous = os.environ.get("SPARK_LOCAL_DIRS")
    os.environ["SPARK_LOCAL_DIRS"] = str(scratch)
    try:
        spark = builder.getOrCreate()
    finally:
        if previous is None:
            os.environ.pop("SPARK_LOCAL_DIRS", None)
        else:
            os.environ["SPARK_LOCAL_DIRS"] = previous
    spark.sparkContext.setLogLevel("ERROR")
    return spark, True


def pyfunc_copies(loaded: LoadedModel, destination: Path, trusted: list[str]) -> dict[str, Path]:
    """Local copies of the version's files: its pyfunc as logged ("predict"), and for a
    classifier one whose pyfunc answers `predict_proba` ("predict_proba").

    The executors load them with MLflow's loader, which takes skops' allow-list from the
    copy's MLmodel and the model's classes from its bundled code: each copy is checked
    against the project's list (`trusted`), given that list, and stripped of the bundled code
    (`loading.own_copy`; executors import the project's package), and that loader is allowed
    for this process only then."""
    local = loading.own_copy(
        loading.download(loaded.uri, destination / "predict"), trusted, uri=loaded.uri
    )
    os.environ[loading.ALLOW_PICKLE] = "true"  # the executors load the checked copies
    copies = {"predict": local}
    if loaded.classifier:
        proba = destination / "predict_proba"
        shutil.copytree(local, proba)
        model = Model.load(str(proba / "MLmodel"))
        model.flavors["python_function"]["predict_fn"] = "predict_proba"
        model.save(str(proba / "MLmodel"))
        copies["predict_proba"] = proba
    return copies


def ship_suites(frame: DataFrame, settings: Settings, root: Path, *, scratch: Path) -> str:
    """Send the problem's suite files with the job (`SparkContext.addFile`), laid out as in the
    project (<name>/problems/<problem>/expectations/), so executors on other machines need the
    project's package, not its checkout; the name they find it by (`SparkFiles.get`). The name is
    new each time: a Spark session refuses a second file of a name it was given (a notebook or
    job that scores twice)."""
    name = f"ml-project-suites-{uuid.uuid4().hex}"
    shipped_root = scratch / name
    suites = problem_folder(shipped_root, settings.problem) / SUITES_FOLDER
    shutil.copytree(problem_folder(root, settings.problem) / SUITES_FOLDER, suites)
    frame.sparkSession.sparkContext.addFile(str(shipped_root), recursive=True)
    return name


def batch_checker(
    settings: Settings, root: Path, *, source: str, shipped_as: str
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The executors' check of each Arrow batch: its rows and the suite's failure ('': none).

    It holds plain values only (the settings as JSON): a Python worker that scored before has
    the model's own copy of `ml_project` (its `code_paths`, perhaps older) first on `sys.path`,
    so it swaps in the package the command runs, then imports it (inside, on purpose)."""
    settings_json = settings.model_dump_json()
    package_parent = str(Path(ml_project.__file__).resolve().parent.parent)
    project_root = str(root)

    def check_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import os
        import sys

        import pandas as pd
        from pyspark import SparkFiles

        loaded = sys.modules.get("ml_project")
        if os.path.isdir(os.path.join(package_parent, "ml_project")) and (
            loaded is None or not str(loaded.__file__).startswith(package_parent + os.sep)
        ):
            for name in [n for n in sys.modules if n.split(".")[0] == "ml_project"]:
                del sys.modules[name]
            sys.path.insert(0, package_parent)
        from ml_project.errors import DataError
        from ml_project.predict import input_checker
        from ml_project.settings import Settings

        shipped = SparkFiles.get(shipped_as)  # the suites, laid out as in the project
        check = input_checker(
            Settings.model_validate_json(settings_json), Path(shipped), source=source
        )
        for batch in batches:
            try:
                check(batch)
                failure = ""
            except DataError as exc:  # reported with the project's own suite path
                failure = str(exc).replace(shipped, project_root)
            yield pd.DataFrame({"rows": [len(batch)], "failure": [failure]})

    return check_batches


def check_input(
    frame: DataFrame, settings: Settings, root: Path, *, source: str, scratch: Path
) -> int:
    """Run the model-input suite on every Arrow batch; the number of rows, or a DataError."""
    from pyspark.sql import functions as F

    columns = settings.features.columns
    require_columns(pd.DataFrame(columns=frame.columns), columns, table=source)
    shipped_as = ship_suites(frame, settings, root, scratch=scratch)
    times = set(settings.features.datetime)  # as the model reads them: ISO text (spark_input)
    selected = [
        spark_input(frame, name, "string").alias(name) if name in times else F.col(name)
        for name in columns
    ]
    checked = frame.select(*selected).mapInPandas(
        batch_checker(settings, root, source=source, shipped_as=shipped_as),
        "rows long, failure string",
    )
    batches = checked.collect()
    failed = [batch["failure"] for batch in batches if batch["failure"]]
    if failed:
        raise DataError(failed[0])
    rows: int = sum(batch["rows"] for batch in batches)
    if rows == 0:
        raise DataError(f"{source}: the input has no rows.")
    return rows


def repeated_keys(frame: DataFrame, key_columns: Sequence[str]) -> DuplicateKeys | None:
    """The rows repeating an earlier row's key, counted by Spark (None: the frame lacks a key
    column). Keys compared as text, rows with a missing key value not counted, as the pandas
    engine does (predict.DuplicateKeys)."""
    from pyspark.sql import functions as F

    if not key_columns or not all(name in frame.columns for name in key_columns):
        return None
    keys = frame.select(*[F.col(name).cast("string").alias(name) for name in key_columns])
    keys = keys.dropna()
    groups = keys.groupBy(*key_columns).count().where(F.col("count") > 1)
    found = groups.agg(F.sum(F.col("count") - 1).alias("rows")).collect()[0]["rows"] or 0
    counted = DuplicateKeys(tuple(key_columns), rows=int(found))
    if counted.rows:
        first = groups.orderBy(*key_columns).first()
        if first is not None:
            counted.example = ", ".join(f"{name}={first[name]}" for name in key_columns)
    return counted


SPARK_TYPES = {"string": "string", "long": "long", "integer": "int", "double": "double",
               "float": "float", "boolean": "boolean"}  # fmt: skip


def spark_input(frame: DataFrame, name: str, kind: str) -> Column:
    """A model column as its signature types it; a Spark timestamp read as text becomes the ISO
    8601 text the pandas path gives (data.iso_text): an instant in UTC with Z, a timestamp
    without zone as written."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    column = F.col(name)
    if kind == "double":
        return column.cast("double")
    spark_type = frame.schema[name].dataType
    if isinstance(spark_type, TimestampNTZType):
        return F.date_format(column, "yyyy-MM-dd'T'HH:mm:ss")
    if isinstance(spark_type, TimestampType):  # shown in the session's zone: moved to UTC
        zone = frame.sparkSession.conf.get("spark.sql.session.timeZone") or "UTC"
        return F.date_format(F.to_utc_timestamp(column, zone), "yyyy-MM-dd'T'HH:mm:ss'Z'")
    return column.cast("string")


def score_dataframe(
    spark: SparkSession, frame: DataFrame, loaded: LoadedModel, copies: dict[str, Path]
) -> DataFrame:
    """`frame` with the same columns the pandas path adds, computed by `spark_udf`."""
    from pyspark.sql import functions as F

    # env_manager="local": the workers run this interpreter and its locked packages (the
    # warning that says so on every call is dropped). On a cluster whose workers lack them,
    # MLflow's env_manager="virtualenv" rebuilds the model's environment instead.
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)
    try:
        predict = mlflow.pyfunc.spark_udf(
            spark,
            str(copies["predict"]),
            result_type=SPARK_TYPES.get(loaded.output_type, "string"),
            env_manager="local",
        )
        proba = (
            mlflow.pyfunc.spark_udf(
                spark,
                str(copies["predict_proba"]),
                result_type="array<double>",
                env_manager="local",
            )  # fmt: skip
            if loaded.classifier
            else None
        )
    finally:
        pyfunc_logger.setLevel(level)
    features = F.struct(
        *[spark_input(frame, name, kind).alias(name) for name, kind in loaded.input_types.items()]
    )
    scored = frame.withColumn(PREDICTION, predict(features))
    if proba is not None:
        probabilities = F.col("__probabilities")
        scored = scored.withColumn("__probabilities", proba(features))
        if loaded.task == "binary":
            scored = scored.withColumn(PROBABILITY, F.element_at(probabilities, 2))
        for index, value in enumerate(loaded.classes):
            column = probability_column(value)
            scored = scored.withColumn(column, F.element_at(probabilities, index + 1))
    facts = dict(zip(VERSION_COLUMNS, (loaded.name, loaded.version, loaded.run_id), strict=True))
    for name, value in facts.items():
        scored = scored.withColumn(name, F.lit(value))
    added = score_columns(loaded.task, loaded.classes)
    return scored.select(*frame.columns, *added, *VERSION_COLUMNS)


def write_parquet(scored: DataFrame, output: str) -> None:
    """A local output appears only when complete (paths.replaced)."""
    if is_uri(output):
        scored.write.mode("overwrite").parquet(output)
        return
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with paths.replaced(target, option="--output") as partial:
        scored.write.mode("overwrite").parquet(str(partial))


def run_spark_scoring(
    settings: Settings,
    *,
    root: Path,
    input_path: str,
    output_path: str,
    model_uri: str | None,
    master: str | None,
    allow_duplicate_keys: bool = False,
) -> ScoringSummary:
    """Load the model (default: the env's champion), check every batch and the keys (as the
    pandas engine: a batch whose rows repeat a key is refused unless `allow_duplicate_keys`),
    score, write."""
    check_parquet(input_path, role="input")
    check_parquet(output_path, role="output")
    check_spark()
    client = tracking.connect(root, write=False)  # scoring reads the registry, writes nothing
    loaded, trusted = load_champion(settings, client, root=root, model_uri=model_uri)
    uri = loaded.uri
    # The version just resolved, not the alias: an alias moved meanwhile changes nothing here.
    if loaded.version:
        loaded = dataclasses.replace(loaded, uri=f"models:/{loaded.name}/{loaded.version}")
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="ml-project-spark-"))
    spark: SparkSession | None = None
    started = False
    try:
        copies = pyfunc_copies(loaded, scratch / "model", trusted)  # before the JVM starts
        spark, started = spark_session(master=master, scratch=scratch)
        rows, keys = score_to(
            spark,
            loaded,
            copies,
            settings,
            root=root,
            scratch=scratch,
            input_path=input_path,
            output_path=output_path,
            allow_duplicate_keys=allow_duplicate_keys,
        )
    finally:
        if started and spark is not None:
            spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return summarise(loaded, input_path, output_path, rows, start=start, keys=keys, model_uri=uri)


def score_to(
    spark: SparkSession,
    loaded: LoadedModel,
    copies: dict[str, Path],
    settings: Settings,
    *,
    root: Path,
    scratch: Path,
    input_path: str,
    output_path: str,
    allow_duplicate_keys: bool,
) -> tuple[int, DuplicateKeys | None]:
    """Check the input's batches and keys, score it and write the output: its rows and keys."""
    start = time.perf_counter()
    frame = spark.read.parquet(input_path)
    rows = check_input(frame, settings, root, source=input_path, scratch=scratch)
    keys = repeated_keys(frame, settings.data.key_columns)
    progress.line("check", time.perf_counter() - start, rows=rows, detail=input_path)
    if keys is not None and keys.rows and not allow_duplicate_keys:
        raise repeated_keys_error(keys.describe(input_path))
    try:
        write_parquet(score_dataframe(spark, frame, loaded, copies), output_path)
    except Exception as exc:  # an executor's InputRuleError arrives as Spark's own error
        refused = refusal_in(str(exc))
        if refused is None:
            raise
        raise DataError(f"{input_path}: {refused}") from exc
    return rows, keys
