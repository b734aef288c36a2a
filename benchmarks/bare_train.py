"""The baseline: the same data, features, model, seed and metrics, with no MLflow and no checks.

Run as a separate process by benchmarks/run.py, so its wall time includes imports as the
pipeline's does. It uses the project's pure steps (which import neither mlflow nor
great-expectations): what differs from `ml-project train` is exactly what the template adds.

    python benchmarks/bare_train.py --env prod [--flights PATH] [--weather PATH]
"""

from __future__ import annotations

import argparse
import json
import time

START = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="prod")
    parser.add_argument("--flights")
    parser.add_argument("--weather")
    args = parser.parse_args()

    from ml_project import data, evaluate, features, pipeline
    from ml_project.settings import load_settings, project_root

    overrides = [f"data.{k}={json.dumps(v)}" for k, v in vars(args).items() if k != "env" and v]
    settings = load_settings(args.env, overrides=tuple(overrides))
    sources = pipeline.data_sources(settings, project_root())
    keys, columns = settings.data.key_columns, features.raw_columns(settings.features)

    # read -> join -> label -> sample -> split -> fit -> metrics: no digests, no logging.
    flights = data.read_table(sources.flights)
    weather = data.read_table(sources.weather)
    labelled, _ = data.label_flights(
        data.join_weather(flights, weather),
        threshold_minutes=settings.data.delay_threshold_minutes,
    )
    used = data.sample_rows(
        labelled, fraction=settings.data.sample_fraction, key_columns=keys, seed=settings.seed
    )
    split = data.split_rows(
        used, test_fraction=settings.split.test_fraction, key_columns=keys, seed=settings.seed
    )
    model = features.build_model(
        features=settings.features, params=settings.model, seed=settings.seed
    )
    model.fit(split.train[columns], split.train[data.LABEL])
    probability = model.predict_proba(split.test[columns])[:, 1]
    metrics = evaluate.classification_metrics(
        split.test[data.LABEL], probability, threshold=settings.model.threshold
    )
    print(
        json.dumps(
            {
                "rows_train": len(split.train),
                "roc_auc": metrics["roc_auc"],
                "seconds": time.perf_counter() - START,
            }
        )
    )


if __name__ == "__main__":
    main()
