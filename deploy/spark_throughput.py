"""Rows per second of both scoring engines on the same Parquet file and model.

    ml-project extract-batch --env dev --output outputs/records.parquet   # every record
    MLFLOW_TRACKING_URI=... python deploy/spark_throughput.py --env dev \
        --input outputs/records.parquet --master 'local[2]'

(`--problem NAME` on both for another problem than the project's default.) Measures, for each
engine, the scoring alone (pandas: the model's prediction and class probabilities on the whole
frame in this process; Spark: `mlflow.pyfunc.spark_udf` into Spark's no-op sink) and the whole
`ml-project predict` (the model-input suite on every batch, scoring, the Parquet output); for
Spark also its session start-up, and the command in an already running session (warm). Prints
one JSON object; docs/scaling.md quotes a run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from ml_project import predict, spark_scoring, tracking
from ml_project.settings import load_settings, project_root


def best_of(repeat: int, run) -> float:
    """The shortest wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def spark_cores(spark) -> int:
    return spark.sparkContext.defaultParallelism


def split_into_parts(frame: pd.DataFrame, folder: Path, *, parts: int) -> Path:
    """`frame` as a folder of `parts` Parquet files, in order."""
    folder.mkdir(parents=True)
    size = -(-len(frame) // parts)
    for index in range(parts):
        chunk = frame.iloc[index * size : (index + 1) * size]
        chunk.to_parquet(folder / f"part-{index:05d}.parquet", index=False)
    return folder


def measure(
    *,
    env: str,
    problem: str | None,
    input_path: Path,
    model_uri: str | None,
    master: str,
    repeat: int,
):
    tracking.quiet_environment()
    root = project_root()
    settings = load_settings(env, problem=problem, root=root)
    client = tracking.connect(root)
    loaded, trusted = predict.load_champion(settings, client, root=root, model_uri=model_uri)
    frame = pd.read_parquet(input_path)
    rows = len(frame)
    scratch = Path(tempfile.mkdtemp(prefix="ml-project-throughput-"))
    seconds = {}
    try:
        seconds["pandas_scoring"] = best_of(
            repeat, lambda: predict.score_frame(loaded, frame, source=str(input_path))
        )
        checker = predict.input_checker(settings, root, source=str(input_path))
        seconds["pandas_command"] = best_of(
            repeat,
            lambda: predict.score_file(
                loaded,
                input_path=input_path,
                output_path=scratch / "pandas.parquet",
                check_chunk=checker,
                progress=False,
            ),
        )
        copies = spark_scoring.pyfunc_copies(loaded, scratch / "model", trusted)  # before the JVM
        start = time.perf_counter()
        spark, _ = spark_scoring.spark_session(master=master, scratch=scratch)
        spark.range(1).count()
        seconds["spark_startup"] = time.perf_counter() - start
        try:
            # Spark splits its input by file (and row group): one part file per core, so that
            # local[N] can use its N cores on the same rows.
            spark_files = spark_cores(spark)
            parts = split_into_parts(frame, scratch / "parts.parquet", parts=spark_files)
            records = spark.read.parquet(str(parts))
            # `ml-project predict --engine spark` as the CLI runs it
            run_command = functools.partial(
                spark_scoring.run_spark_scoring,
                settings,
                root=root,
                input_path=str(parts),
                output_path=str(scratch / "spark.parquet"),
                model_uri=loaded.uri,
                master=master,
            )
            scored = spark_scoring.score_dataframe(spark, records, loaded, copies)
            seconds["spark_scoring"] = best_of(
                repeat, lambda: scored.write.format("noop").mode("overwrite").save()
            )
            # The command as the CLI runs it again and again in one application: the Python
            # workers that scored now validate the next run's batches.
            seconds["spark_command_warm"] = best_of(repeat, run_command)
        finally:
            spark.stop()
        # The command from nothing, as `ml-project predict --engine spark` runs: its own session.
        seconds["spark_command"] = best_of(1, run_command)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "rows": rows,
        "problem": settings.problem,
        "task": loaded.task,
        "model": f"{loaded.name} version {loaded.version}",
        "master": master,
        "spark_input_files": spark_files,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
        "rows_per_second": {
            name: round(rows / value) for name, value in seconds.items() if name != "spark_startup"
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="dev", help="env whose champion is scored (dev)")
    parser.add_argument(
        "--problem", help="the problem under problems/ (default: the project's `problem:`)"
    )
    parser.add_argument("--input", type=Path, required=True, help="raw records, Parquet")
    parser.add_argument("--model-uri", help="instead of the env's champion")
    parser.add_argument("--master", default="local[2]", help="Spark master (local[2])")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measure; best kept")
    args = parser.parse_args()
    result = measure(
        env=args.env,
        problem=args.problem,
        input_path=args.input,
        model_uri=args.model_uri,
        master=args.master,
        repeat=args.repeat,
    )
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
