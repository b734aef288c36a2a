"""The baseline: the flights demo trained by a plain script, without the platform.

Run as a separate process by benchmarks/run.py, so its wall time includes imports as
`ml-project train`'s does. It is what a user would write with pandas and scikit-learn: read
the tables, join them and label the records with the problem's own code
(problems/flights/problem.py: records, label, build_model), draw the env's sample, split with
`train_test_split` (same fractions and seed), fit, and score the held-out rows. From the project
it takes only the resolved settings (the table files, features, params, fractions and seed), so
both fit the same configured model on the same files. Everything else `ml-project train` does
is the template's cost: the suites, the keyed sample and split, digests, lineage, the MLflow
run, registration, MLflow's evaluation, the baseline model and the gate.

    python benchmarks/bare_train.py --env prod [--table flights=PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

START = time.perf_counter()
PROBLEM = "flights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="prod", choices=("dev", "staging", "prod"))
    parser.add_argument(
        "--table",
        dest="tables",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="read table NAME from PATH instead of the configured file (repeatable)",
    )
    args = parser.parse_args()

    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from synthetic import read_frame

    from ml_project.data import resolve_table
    from ml_project.settings import load_settings, project_root

    overrides = []
    for text in args.tables:
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            parser.error(f"--table expects NAME=PATH, got {text!r}")
        overrides.append(f"data.tables.{name}={json.dumps(str(Path(path).resolve()))}")
    root = project_root()
    settings = load_settings(args.env, problem=PROBLEM, overrides=tuple(overrides), root=root)
    sys.path.insert(0, str(root))  # the project's problems/, as `python -m ml_project` has it
    from problems.flights import problem

    params = problem.Params.model_validate(dict(settings.params))
    features = settings.features
    columns = [*features.categorical, *features.numeric]

    # read -> join -> label -> sample -> split -> fit -> score: nothing checked, logged or kept.
    tables = {
        name: read_frame(resolve_table(spec, root)) for name, spec in settings.data.tables.items()
    }
    records = problem.records(tables, params)
    labels = problem.label(records, params)
    known = labels.notna().to_numpy()
    rows = records.loc[known, columns].astype({name: "float64" for name in features.numeric})
    target = labels[known].astype("int64")
    if settings.data.sample_fraction < 1.0:
        rows = rows.sample(frac=settings.data.sample_fraction, random_state=settings.seed)
        target = target.loc[rows.index]
    x_train, x_test, y_train, y_test = train_test_split(
        rows, target, test_size=settings.split.test_fraction, random_state=settings.seed
    )
    model = problem.build_model(
        features=features, task=settings.task, params=params, seed=settings.seed
    )
    model.fit(x_train, y_train)
    probability = model.predict_proba(x_test)[:, 1]
    print(
        json.dumps(
            {
                "rows_train": len(x_train),
                "rows_test": len(x_test),
                "roc_auc": roc_auc_score(y_test, probability),
                "pr_auc": average_precision_score(y_test, probability),
                "brier": brier_score_loss(y_test, probability),
                "seconds": time.perf_counter() - START,
            }
        )
    )


if __name__ == "__main__":
    main()
