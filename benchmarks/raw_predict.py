"""The scoring baseline: the registered model's own calls, in-process, on the same rows.

    python benchmarks/raw_predict.py --model-uri models:/<name>_prod@champion \
        --input records.parquet --repeats 5

Reading the file, loading the model and typing its input columns are outside the timing: only
the model's `predict` (and, for a classifier, `predict_proba`) on every row is timed, the same
calls `ml-project predict` makes for its prediction and probability columns. That is the
ceiling batch scoring is compared against, on as many OpenMP threads as `predict` uses (one,
unless OMP_NUM_THREADS is set: the same helper sets it before scikit-learn is imported).
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
    args = parser.parse_args()

    from ml_project.cli import bound_scoring_threads

    bound_scoring_threads()  # before scikit-learn loads OpenMP, as `ml-project predict` does

    import pandas as pd

    from ml_project import metrics, tracking
    from ml_project.predict import load_champion, typed_input
    from ml_project.settings import load_settings, project_root

    root = project_root()
    settings = load_settings("dev", root=root)  # the default problem's allow-list
    loaded, _ = load_champion(settings, tracking.connect(root), root=root, model_uri=args.model_uri)
    rows = typed_input(pd.read_parquet(args.input), loaded.input_types, source=args.input)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        metrics.predict(loaded.model, rows, loaded.task)
        rates.append(len(rows) / (time.perf_counter() - start))
    print(json.dumps({"rows": len(rows), "task": loaded.task, "rows_per_second": rates}))


if __name__ == "__main__":
    main()
