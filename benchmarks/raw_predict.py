"""The scoring baseline: the registered model's own predict_proba, in-process, on the same rows.

    python benchmarks/raw_predict.py --model-uri models:/flights_delay_prod@champion \
        --input records.parquet --repeats 5

Reading the file and loading the model are outside the timing: only predict_proba is timed,
which is the ceiling batch scoring is compared against.
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

    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import get_model_info

    from ml_project.predict import typed_input

    model = mlflow.sklearn.load_model(args.model_uri)
    signature = get_model_info(args.model_uri).signature
    types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    rows = typed_input(pd.read_parquet(args.input), types, source=args.input)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        model.predict_proba(rows)
        rates.append(len(rows) / (time.perf_counter() - start))
    print(json.dumps({"rows": len(rows), "rows_per_second": rates}))


if __name__ == "__main__":
    main()
