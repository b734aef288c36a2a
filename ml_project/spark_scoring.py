"""Batch scoring on Apache Spark: `mlflow.pyfunc.spark_udf` on the champion, Parquet in and out.

The same model, checks and output columns as the pandas path (`predict.py`), for tables that
outgrow one process. One pass runs the model-input expectation suite on every Arrow batch
(`mapInPandas`) and counts the rows; a second pass scores with `mlflow.pyfunc.spark_udf`. The
UDF runs the registered version's own pyfunc with its `predict_fn` set to `predict_proba` (the
switch `mlflow.sklearn.log_model(pyfunc_predict_fn=...)` writes), on a local copy of the
version's files, so one model call gives the probability; the label is derived from it with
the model's own threshold, as in the pandas path. The registry's model is never changed.

pyspark is the optional extra `[spark]`; it is imported inside functions only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ml_project.errors import ConfigError, DataError
from ml_project.predict import (
    PREDICTION,
    PROBABILITY,
    LoadedModel,
    ScoringSummary,
    decision_rule,
    default_model_uri,
    load_model,
)
from ml_project.tracking import PYSPARK_PANDAS_WARNING

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


def spark_session(*, master: str | None, scratch: Path):
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


def probability_model(loaded: LoadedModel, destination: Path) -> Path:
    """A local copy of the version's files whose pyfunc answers `predict_proba`."""
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    local = Path(download_artifacts(loaded.uri, dst_path=str(destination)))
    mlmodel = local / "MLmodel"
    model = Model.load(str(mlmodel))
    model.flavors["python_function"]["predict_fn"] = "predict_proba"
    model.save(str(mlmodel))
    return local


def check_input(frame, settings, root: Path, *, source: str) -> int:
    """Run the model-input suite on every Arrow batch; the number of rows, or a DataError.

    The suite files travel with the job (`SparkContext.addFile`), so executors on other
    machines need the project's package, not its checkout. The function shipped to the
    executors holds plain values only (the settings as JSON): a Python worker that scored
    before has the model's own copy of `ml_project` (its `code_paths`, perhaps older) first on
    `sys.path`, so it swaps in the package the command runs before validating with it.
    """
    import pandas as pd

    import ml_project
    from ml_project.data import require_columns
    from ml_project.features import raw_columns
    from ml_project.validation import SUITES_FOLDER

    columns = raw_columns(settings.features)
    require_columns(pd.DataFrame(columns=frame.columns), columns, table=source)
    frame.sparkSession.sparkContext.addFile(str(root / SUITES_FOLDER), recursive=True)
    settings_json = settings.model_dump_json()
    package_parent = str(Path(ml_project.__file__).resolve().parent.parent)
    project_root = str(root)

    def check_batches(batches):  # runs on the executors: no ml_project object captured
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

        shipped = os.path.dirname(SparkFiles.get(SUITES_FOLDER))
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

    schema = "rows long, failure string"
    batches = frame.select(*columns).mapInPandas(check_batches, schema).collect()
    failed = [batch["failure"] for batch in batches if batch["failure"]]
    if failed:
        raise DataError(failed[0])
    rows = sum(batch["rows"] for batch in batches)
    if rows == 0:
        raise DataError(f"{source}: the input has no rows.")
    return rows


def score_dataframe(spark, frame, loaded: LoadedModel, model_dir: Path):
    """`frame` with the same five columns the pandas path adds, computed by `spark_udf`."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    # env_manager="local": the workers run this interpreter and its locked packages (the
    # warning that says so on every call is dropped). On a cluster whose workers lack them,
    # MLflow's env_manager="virtualenv" rebuilds the model's environment instead.
    pyfunc_logger = logging.getLogger("mlflow.pyfunc")
    level = pyfunc_logger.level
    pyfunc_logger.setLevel(logging.ERROR)
    try:
        udf = mlflow.pyfunc.spark_udf(
            spark, str(model_dir), result_type="array<double>", env_manager="local"
        )
    finally:
        pyfunc_logger.setLevel(level)
    features = [
        F.col(name).cast("double" if kind == "double" else "string").alias(name)
        for name, kind in loaded.input_types.items()
    ]
    threshold, classes = decision_rule(loaded.model)
    negative, positive = (_literal(value, classes.dtype) for value in classes)
    probability = F.element_at(udf(F.struct(*features)), 2)
    scored = frame.withColumn(PROBABILITY, probability)
    label = F.when(F.col(PROBABILITY) >= F.lit(float(threshold)), positive).otherwise(negative)
    return (
        scored.withColumn(PREDICTION, label)
        .select(*frame.columns, PREDICTION, PROBABILITY)
        .withColumn("model_name", F.lit(loaded.name))
        .withColumn("model_version", F.lit(loaded.version))
        .withColumn("model_run_id", F.lit(loaded.run_id))
    )


def _literal(value, dtype):
    """A class label as a Spark literal of the type pandas writes for it (int64 -> long)."""
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_type

    spark_type = from_arrow_type(pa.from_numpy_dtype(dtype))
    return F.lit(value.item() if hasattr(value, "item") else value).cast(spark_type)


def write_parquet(scored, output: str) -> None:
    """A local output appears only when complete (written beside it, then renamed)."""
    if is_uri(output):
        scored.write.mode("overwrite").parquet(output)
        return
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        scored.write.mode("overwrite").parquet(str(partial))
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def run_spark_scoring(
    settings,
    *,
    root: Path,
    input_path: str,
    output_path: str,
    model_uri: str | None,
    master: str | None,
) -> ScoringSummary:
    """Load the model (default: the env's champion), check every batch, score, write."""
    from ml_project import tracking

    check_parquet(input_path, role="input")
    check_parquet(output_path, role="output")
    client = tracking.connect(root)
    loaded = load_model(model_uri or default_model_uri(settings.tracking.model_name), client)
    # The version just resolved, not the alias: an alias moved meanwhile changes nothing here.
    if loaded.version:
        pinned = f"models:/{loaded.name}/{loaded.version}"
        loaded = dataclasses.replace(loaded, uri=pinned)
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="ml-project-spark-"))
    spark, started = spark_session(master=master, scratch=scratch)
    try:
        frame = spark.read.parquet(input_path)
        rows = check_input(frame, settings, root, source=input_path)
        model_dir = probability_model(loaded, scratch / "model")
        write_parquet(score_dataframe(spark, frame, loaded, model_dir), output_path)
    finally:
        if started:
            spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return ScoringSummary(
        input=input_path,
        output=output_path,
        rows=rows,
        seconds=time.perf_counter() - start,
        model_uri=model_uri or default_model_uri(settings.tracking.model_name),
        model_name=loaded.name,
        model_version=loaded.version,
        model_run_id=loaded.run_id,
    )
