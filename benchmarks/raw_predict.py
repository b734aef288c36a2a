"""The scoring baseline: the registered model's own calls, in-process, on the same rows.

    python benchmarks/raw_predict.py --model-uri models:/<name>_prod@champion \
        --input records.parquet --repeats 5 [--single-rows 300]

Reading the file, loading the model and typing its input columns are outside the timing: only
the model's own `predict` (and, for a classifier, `predict_proba`) on every row is timed, as a
plain script would call them for a prediction and probability columns. That is the ceiling batch
scoring is compared against, on as many OpenMP threads as `predict` uses (one, unless
OMP_NUM_THREADS is set: the same helper sets it before scikit-learn is imported). The platform's
own scoring (`metrics.predict`, which runs a Pipeline's transforming steps and a boosted model's
trees once for both columns) is not the baseline: what it saves counts for `ml-project predict`.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--single-rows",
        type=int,
        default=0,
        help="also time the model's own predict on this many one-row frames (what one served "
        "request costs the model: the floor of serving's latency)",
    )
    args = parser.parse_args()

    from ml_project.cli import bound_scoring_threads

    bound_scoring_threads()  # before scikit-learn loads OpenMP, as `ml-project predict` does

    import pandas as pd

    from ml_project import tracking
    from ml_project.predict import load_champion, typed_input
    from ml_project.settings import load_settings, project_root

    root = project_root()
    settings = load_settings("dev", root=root)  # the default problem's allow-list
    loaded, _ = load_champion(settings, tracking.connect(root), root=root, model_uri=args.model_uri)
    rows = typed_input(pd.read_parquet(args.input), loaded.input_types, source=args.input)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        own_calls(loaded.model, rows, loaded.task)
        rates.append(len(rows) / (time.perf_counter() - start))
    out = {"rows": len(rows), "task": loaded.task, "rows_per_second": rates}
    if args.single_rows:
        out["single_row_ms"] = single_rows(loaded.model, rows.head(args.single_rows))
    print(json.dumps(out))


def own_calls(model, rows, task: str) -> None:
    """The model's own calls for the prediction and, for a classifier, the probabilities."""
    model.predict(rows)
    if task != "regression":
        model.predict_proba(rows)


def single_rows(model, rows) -> dict:
    """Median and p99 wall and CPU milliseconds of `model.predict` on each row alone (after 20
    warm-up calls): the Pipeline's per-call cost, which no request path can go below."""
    frames = [rows.iloc[[i]] for i in range(len(rows))]
    for frame in frames[:20]:
        model.predict(frame)
    wall, cpu = [], []
    for frame in frames:
        start, start_cpu = time.perf_counter(), time.process_time()
        model.predict(frame)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    wall.sort()
    return {
        "n": len(frames),
        "p50_ms": wall[len(wall) // 2],
        "p99_ms": wall[min(len(wall) - 1, round(0.99 * (len(wall) - 1)))],
        "cpu_mean_ms": sum(cpu) / len(cpu),
    }


if __name__ == "__main__":
    main()
