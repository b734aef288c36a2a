"""Where a served one-row request's time goes, in process: MLflow's parts and each model step.

    python benchmarks/serve_steps.py --model-uri models:/<name>_prod@champion \
        --input records.parquet [--rows 300] [--rounds 3]

The model is loaded as `ml-project serve` loads it (serving.plan and serving.load: the project's
allow-list), in one OpenMP thread, with the heap frozen as `serve` freezes it. Each request body
is the JSON `benchmarks/run.py` sends (`dataframe_split`, one record, the signature's columns).
Per request, CPU milliseconds (the process's, so other agents' load does not count) of:
`invocations` (MLflow's scoring function: parse, enforce, predict, JSON out, no HTTP), the parse
by the signature alone, pyfunc's predict (schema enforcement + the model), the model's own
`predict`, and each step of the Pipeline on its own (`transform` of each step, then the last
step's `predict`). Printed as one line of JSON: median and mean CPU ms and the median wall ms
of each part (benchmarks/run.py reads it for its serving verdict).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="each part's timing, repeated")
    parser.add_argument("--env", default="prod")
    args = parser.parse_args()

    from ml_project.cli import bound_scoring_threads

    bound_scoring_threads()

    import pandas as pd
    from mlflow.pyfunc import scoring_server

    from ml_project import serving, tracking
    from ml_project.settings import load_settings, project_root

    root = project_root()
    settings = load_settings(args.env, root=root)
    client = tracking.connect(root, write=False)
    served = serving.plan(settings, root=root, model_uri=args.model_uri, client=client)
    pyfunc = serving.load(served, served.pinned)
    model = pyfunc.get_raw_model()
    schema = pyfunc.metadata.get_input_schema()
    columns = schema.input_names()
    rows = pd.read_parquet(args.input, columns=columns).head(args.rows)
    bodies = [
        json.dumps(
            {"dataframe_split": json.loads(rows.iloc[[i]].to_json(orient="split", index=False))}
        )
        for i in range(len(rows))
    ]
    parsed = [scoring_server.infer_and_parse_data(json.loads(b), schema) for b in bodies]
    enforced = [_enforced(pyfunc, frame) for frame in parsed]
    gc.collect()
    gc.freeze()

    parts = {
        "invocations": lambda i: scoring_server.invocations(
            bodies[i], "application/json", pyfunc, schema
        ),
        "parse": lambda i: scoring_server.infer_and_parse_data(json.loads(bodies[i]), schema),
        "pyfunc.predict": lambda i: pyfunc.predict(parsed[i]),
        "model.predict": lambda i: model.predict(enforced[i]),
    }
    results: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for name, call in parts.items():
            results.setdefault(name, []).append(_timed(call, len(bodies)))
        for name, stats in _steps(model, enforced).items():
            results.setdefault(f"step {name}", []).append(stats)
    out = {
        name: {
            "cpu_median_ms": round(statistics.median(r["cpu_median_ms"] for r in rounds), 3),
            "cpu_mean_ms": round(statistics.median(r["cpu_mean_ms"] for r in rounds), 3),
            "wall_median_ms": round(statistics.median(r["wall_median_ms"] for r in rounds), 3),
        }
        for name, rounds in results.items()
    }
    print(json.dumps(out))


def _enforced(pyfunc, frame):
    """The frame as pyfunc hands it to the model (after MLflow's schema enforcement)."""
    from mlflow.models.utils import _enforce_schema  # the benchmark only: what the model gets

    return _enforce_schema(frame, pyfunc.metadata.get_input_schema())


def _timed(call, count: int, warm: int = 20) -> dict:
    for i in range(min(warm, count)):
        call(i)
    cpu, wall = [], []
    for i in range(count):
        start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
        call(i)
        cpu.append((time.process_time_ns() - start_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - start) / 1e6)
    return {
        "cpu_median_ms": statistics.median(cpu),
        "cpu_mean_ms": statistics.fmean(cpu),
        "wall_median_ms": statistics.median(wall),
    }


def _steps(model, frames) -> dict[str, dict]:
    """Each step of a Pipeline alone: its input is what the steps before it made of the row."""
    steps = getattr(model, "steps", [("model", model)])
    inputs = list(frames)
    out = {}
    for name, step in steps[:-1]:
        results = [None] * len(inputs)

        def transform(i, step=step, results=results, inputs=inputs):
            results[i] = step.transform(inputs[i])

        out[name] = _timed(transform, len(inputs))
        inputs = results
    name, last = steps[-1]
    out[name] = _timed(lambda i: last.predict(inputs[i]), len(inputs))
    return out


if __name__ == "__main__":
    main()
