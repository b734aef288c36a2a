"""Synthetic problems of each task kind, written as a user would: a folder under problems/.

Platform tests use these, never a bundled example. Each problem reads one CSV table with an
integer `id` key, a few numeric and text columns (with some gaps), and a label with signal:
`binary` (a logistic draw, labels "yes"/"no"), `multiclass` (three classes "a", "b", "c") or
`regression` (a linear target with noise). `problem.py` is empty: the platform's default model
and the label column as it is.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from ml_project.settings import Settings, load_settings

KINDS = ("binary", "multiclass", "regression")
NUMERIC = ("x1", "x2", "x3", "x4")
CATEGORICAL = ("colour",)
COLOURS = ("red", "green", "blue", "grey")
GATES = {  # floors a model with the signal below passes easily; a useless one fails
    "binary": {"floors": {"roc_auc": 0.7}, "ceilings": {"log_loss": 0.65},
               "primary_metric": "roc_auc"},
    "multiclass": {"floors": {"accuracy": 0.55}, "ceilings": {},
                   "primary_metric": "accuracy"},
    "regression": {"floors": {"r2": 0.5}, "ceilings": {}, "primary_metric": "rmse"},
}  # fmt: skip


def make_table(kind: str, rows: int = 3000, *, seed: int = 0) -> pd.DataFrame:
    """A table with an integer id, the features, and a `target` that depends on them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(1, rows + 1) * 7 + 1000})
    for name in NUMERIC:
        frame[name] = rng.normal(0, 1, rows).round(4)
    frame["colour"] = rng.choice(COLOURS, rows)
    effect = frame["colour"].map({"red": 1.0, "green": -0.5, "blue": 0.0, "grey": 0.5})
    signal = 1.5 * frame["x1"] - 1.0 * frame["x2"] + 0.5 * frame["x3"] * frame["x4"] + effect
    if kind == "binary":
        probability = 1 / (1 + np.exp(-signal))
        frame["target"] = np.where(rng.random(rows) < probability, "yes", "no")
    elif kind == "multiclass":
        noisy = signal + rng.normal(0, 0.5, rows)
        frame["target"] = np.select([noisy < -0.7, noisy < 0.7], ["a", "b"], "c")
    else:
        frame["target"] = (10 + 3 * signal + rng.normal(0, 1, rows)).round(3)
    frame.loc[rng.random(rows) < 0.02, "x3"] = np.nan  # some gaps, as real data has
    return frame


def suite(table: str, columns: dict[str, str], *, key: bool, text_values=None) -> str:
    """A great-expectations suite: types, nulls where none are expected, the key unique."""
    numeric = "[int8, int16, int32, int64, Int64, float32, float64, Float64, int, float]"
    lines = [f"table: {table}", "expectations:"]
    if key:
        lines += [
            "  - type: expect_column_values_to_be_unique",
            "    kwargs: {column: id}",
            "  - type: expect_table_row_count_to_be_between",
            "    kwargs: {min_value: $min_rows}",
        ]
    else:
        lines += [
            "  - type: expect_table_columns_to_match_ordered_list",
            "    kwargs: {column_list: $model_columns}",
        ]
    for name, kind in columns.items():
        types = "[str, StringDtype, object]" if kind == "text" else numeric
        lines += [
            "  - type: expect_column_values_to_be_in_type_list",
            f"    kwargs: {{column: {name}, type_list: {types}}}",
        ]
    lines += [
        "  - type: expect_column_values_to_not_be_null",
        "    kwargs: {column: colour}",
        "  - type: expect_column_values_to_be_in_set",
        f"    kwargs: {{column: colour, value_set: [{', '.join(COLOURS)}]}}",
        "  - type: expect_column_values_to_be_between",
        "    kwargs: {column: x1, min_value: -10, max_value: 10}",
    ]
    return "\n".join(lines) + "\n"


def write_problem(root: Path, kind: str, *, name: str | None = None, rows: int = 3000) -> str:
    """problems/<name>/ and data/<name>.csv in the project at `root`; returns the name."""
    name = name or f"synthetic_{kind}"
    folder = root / "problems" / name
    (folder / "environments").mkdir(parents=True, exist_ok=True)
    (folder / "expectations").mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    make_table(kind, rows).to_csv(root / "data" / f"{name}.csv", index=False)
    (folder / "__init__.py").write_text("")
    (root / "problems" / "__init__.py").touch()
    (folder / "problem.py").write_text(
        f'"""A synthetic {kind} problem: one table, the default model."""\n'
    )
    gate = GATES[kind]
    (folder / "environments" / "base.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            task: {kind}
            data:
              tables: {{{name}: data/{name}.csv}}
              key_columns: [id]
              label: target
              sample_fraction: 1.0
            features:
              categorical: [colour]
              numeric: [x1, x2, x3, x4]
            params: {{max_iter: 60, learning_rate: 0.1}}
            validation:
              parameters: {{min_rows: 100}}
            monitor:
              max_quality_drop: {0.5 if kind == "regression" else 0.05}
            gate:
              floors: {gate["floors"]}
              ceilings: {gate["ceilings"]}
              primary_metric: {gate["primary_metric"]}
            """
        )
    )
    (folder / "environments" / "staging.yaml").write_text("data:\n  sample_fraction: 0.5\n")
    columns = {"id": "number", "colour": "text", **{n: "number" for n in NUMERIC}}
    (folder / "expectations" / f"{name}.yaml").write_text(suite(name, columns, key=True))
    inputs = {"colour": "text", **{n: "number" for n in NUMERIC}}
    (folder / "expectations" / "model_input.yaml").write_text(
        suite("model_input", inputs, key=False)
    )
    return name


def synthetic_settings(
    root: Path, kind: str = "binary", overrides: tuple[str, ...] = (), **kwargs
) -> Settings:
    """The dev settings of the problem `write_problem(root, kind)` wrote."""
    return load_settings(
        "dev", problem=f"synthetic_{kind}", root=root, overrides=overrides, **kwargs
    )
