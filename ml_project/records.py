"""Records into rows: read a problem's tables, make its records, label, sample, split (pure but
for reading files and the problem's own code).

The steps training, the gate's comparisons, `reproduce` and the benchmarks share, so that each
of them sees the rows training saw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml_project import data
from ml_project.errors import ConfigError, DataError
from ml_project.problem import Problem
from ml_project.settings import Settings
from ml_project.vocabulary import SPLIT_CUTOFF, SPLIT_KIND, SPLIT_TIME_COLUMN

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    """The labelled rows used for training and evaluation, and what describes them."""

    split: data.Split
    columns: list[str]
    label: str
    rows: dict[str, int]
    digests: dict[str, str]
    time_column: str | None = None  # the split's: held out the newest rows by it

    def split_tags(self) -> dict[str, str]:
        """Which split was used: `split.kind` time or hash, and a time split's column and
        cut-off (the oldest held-out time)."""
        if self.time_column is None:
            return {SPLIT_KIND: "hash"}
        return {
            SPLIT_KIND: "time",
            SPLIT_TIME_COLUMN: self.time_column,
            SPLIT_CUTOFF: self.split.cutoff or "",
        }


def table_paths(settings: Settings, root: Path) -> dict[str, Path]:
    """The file of each table the settings name (see data.resolve_table)."""
    return {name: data.resolve_table(spec, root) for name, spec in settings.data.tables.items()}


def read_tables(paths: dict[str, Path]) -> dict[str, pd.DataFrame]:
    return {name: data.read_table(path) for name, path in paths.items()}


def file_digests(paths: dict[str, Path]) -> dict[str, str]:
    return {name: data.file_digest(path) for name, path in paths.items()}


def prepare_data(
    settings: Settings, problem: Problem, tables: dict[str, pd.DataFrame]
) -> PreparedData:
    """Records, label, sample and split the tables as the settings say (pure but for the
    problem's own code)."""
    columns = settings.features.columns
    key_columns = list(settings.data.key_columns)
    label = settings.data.label
    time_column = settings.split.time_column
    records = problem.records(tables)
    where = f"records of problem {settings.problem}"
    times = [time_column] if time_column else []
    data.require_columns(records, [*key_columns, *columns, *times], table=where)
    labelled, unlabelled = data.label_rows(records, problem.label(records, label), column=label)
    data.require_unique_keys(labelled, key_columns, table=where)
    used = data.sample_rows(
        labelled,
        fraction=settings.data.sample_fraction,
        key_columns=key_columns,
        seed=settings.seed,
    )
    used = used.loc[:, list(dict.fromkeys([*key_columns, *columns, label, *times]))]
    try:
        split = data.split_rows(
            used,
            test_fraction=settings.split.test_fraction,
            key_columns=key_columns,
            seed=settings.seed,
            time_column=time_column,
        )
    except DataError as exc:
        raise DataError(f"{where}: {exc} (env {settings.env})") from exc
    check_split(settings, split, labelled=len(labelled))
    logger.info(
        "records: %d, %d labelled, %d used, %d train, %d held out",
        len(records), len(labelled), len(used), len(split.train), len(split.test),
    )  # fmt: skip
    rows = {
        "records": len(records),
        "unlabelled_dropped": unlabelled,
        "labelled": len(labelled),
        "used": len(used),
        "train": len(split.train),
        "test": len(split.test),
    }
    digests = {
        "digest": data.frame_digest(used),
        "train_digest": data.frame_digest(split.train),
        "test_digest": data.frame_digest(split.test),
        "test_keys_digest": data.frame_digest(split.test[key_columns]),
    }
    return PreparedData(
        split=split,
        columns=columns,
        label=label,
        rows=rows,
        digests=digests,
        time_column=time_column,
    )


def check_split(settings: Settings, split: data.Split, *, labelled: int) -> None:
    """Refuse, before fitting, a split that leaves a side empty or (classifying) one class."""
    knobs = (
        f"data.sample_fraction={settings.data.sample_fraction} and "
        f"split.test_fraction={settings.split.test_fraction} (env {settings.env})"
    )
    for side, frame in (("train", split.train), ("test", split.test)):
        if frame.empty:
            raise ConfigError(
                f"{knobs} leave the {side} side empty ({len(split.train)} train and "
                f"{len(split.test)} test rows of {labelled} labelled): raise the sample fraction "
                "or change the test fraction."
            )
    if settings.task != "regression":
        _check_classes(settings, split, knobs)


def _check_classes(settings: Settings, split: data.Split, knobs: str) -> None:
    """Refuse classes too rare to learn or judge, or missing from a side of the split."""
    label = settings.data.label
    counts = pd.concat([split.train[label], split.test[label]]).value_counts()
    rare = counts[counts < settings.split.min_class_rows]
    if len(counts) > 1 and not rare.empty:
        shown = ", ".join(f"{value!s} ({count} rows)" for value, count in list(rare.items())[:10])
        raise DataError(
            f"The class(es) {shown} of the label {label} have fewer than "
            f"split.min_class_rows={settings.split.min_class_rows} of the "
            f"{len(split.train) + len(split.test)} rows used under {knobs}: too few to learn or "
            "to judge, and which side of the split they fall on would change with the seed. "
            "Use more rows, merge or drop the rare classes, or lower split.min_class_rows."
        )
    train_classes = set(split.train[label].unique())
    if len(train_classes) < 2:
        raise DataError(
            f"The label {label} has one class ({sorted(map(str, train_classes))}) in the "
            f"{len(split.train)} train rows under {knobs}: a classifier needs at least two."
        )
    if settings.task == "binary" and len(train_classes) != 2:
        raise ConfigError(
            f"task: binary, but the label {label} has {len(train_classes)} classes "
            f"({', '.join(sorted(map(str, train_classes))[:10])}): set task: multiclass."
        )
    _check_sides(settings, split, knobs, train_classes)


def _check_sides(
    settings: Settings, split: data.Split, knobs: str, train_classes: set[object]
) -> None:
    label = settings.data.label
    test_classes = set(split.test[label].unique())
    if len(test_classes) < 2:
        raise DataError(
            f"The {len(split.test)} held-out rows hold one class of the label {label} under "
            f"{knobs}: the gate could not measure the model. Use more rows."
        )
    train_counts = split.train[label].value_counts()
    scarce = train_counts[train_counts < 2]
    if not scarce.empty:  # a time split may leave a class's rows nearly all held out
        shown = ", ".join(f"{value!s} ({count} row)" for value, count in list(scarce.items())[:10])
        raise DataError(
            f"The class(es) {shown} of the label {label} have fewer than 2 of the "
            f"{len(split.train)} train rows under {knobs}: too few to learn (and to draw "
            "early stopping's validation rows from). Use more rows, or merge or drop the class."
        )
    unseen, untested = test_classes - train_classes, train_classes - test_classes
    if settings.split.time_column is not None:
        # the newest period may lack a class (a season's snow): the model is judged on the
        # classes it holds, and the metrics that need every class are undefined (NaN)
        untested = set()
    if unseen or untested:
        side, classes = ("train", unseen) if unseen else ("held-out", untested)
        raise DataError(
            f"The class(es) {', '.join(sorted(map(str, classes))[:10])} of the label {label} "
            f"are missing from the {side} rows under {knobs}: a classifier is trained and "
            "judged on the same classes. Use more rows, or merge or drop the rare classes."
        )


def model_input(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame`'s raw model columns typed as the signature says: text, numbers (float64), and
    timestamps as ISO 8601 text (data.iso_text)."""
    columns = settings.features.columns
    numeric = settings.features.numeric
    typed = frame.loc[:, columns].astype({name: "float64" for name in numeric})
    return with_iso_times(typed, settings.features.datetime)


def with_iso_times(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`frame` with each of `columns` it holds as ISO 8601 text (data.iso_text)."""
    present = [name for name in columns if name in frame.columns]
    if not present:
        return frame
    return frame.assign(**{name: data.iso_text(frame[name]) for name in present})
