"""Records into rows: read a problem's tables, make its records, label, sample, split (pure but
for reading files and the problem's own code).

The steps training, the gate's comparisons, `reproduce` and the benchmarks share, so that each
of them sees the rows training saw.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ml_project import data, sources
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


def table_paths(settings: Settings, root: Path) -> dict[str, sources.Location]:
    """Where each table the settings name is read from: a local file's path, else its source
    (sources.locate)."""
    return {name: sources.locate(spec, root) for name, spec in settings.data.tables.items()}


def read_tables(paths: Mapping[str, sources.Location]) -> dict[str, pd.DataFrame]:
    tables = {}
    for name, source in paths.items():
        logger.info("reading table %s from %s", name, source)
        tables[name] = sources.read(source)
    return tables


def file_digests(
    paths: Mapping[str, sources.Location], tables: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, str]:
    """Each table's digest (sources.digest): a local file's bytes, else the rows in `tables`."""
    return {
        name: sources.digest(source, (tables or {}).get(name, pd.DataFrame()))
        for name, source in paths.items()
    }


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
    check_labels(settings, problem, tables, records, labelled)
    check_keys(settings, labelled, where)
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


def check_keys(settings: Settings, labelled: pd.DataFrame, where: str) -> None:
    """Records sharing a key: bad data, unless the key itself came from the command line (a
    configuration error naming the setting, exit 2)."""
    key_columns = list(settings.data.key_columns)
    try:
        data.require_unique_keys(labelled, key_columns, table=where)
    except DataError as exc:
        origin = settings.origin("data", "key_columns")
        if "command line" not in origin:
            raise
        raise ConfigError(
            f"data.key_columns={key_columns} ({origin}) does not name one record per row: "
            f"{exc} Name the columns that identify a record, or drop the --set."
        ) from exc


def check_labels(
    settings: Settings,
    problem: Problem,
    tables: dict[str, pd.DataFrame],
    records: pd.DataFrame,
    labelled: pd.DataFrame,
) -> None:
    """Refuse, before any sampling or split, labels none could fix: no record labelled, or
    (classifying) one class among all of them; the message says what the label is made of and
    which settings an overlay or the command line changed."""
    label = settings.data.label
    if len(labelled) and (settings.task == "regression" or labelled[label].nunique() >= 2):
        return
    sources = problem.label_sources(records, label)
    made = _made_of(problem, label, sources, tables, records)
    changed = settings.set_outside_base("params")
    hint = f" Settings changed from the base: {'; '.join(changed)}." if changed else ""
    if not len(labelled):
        raise DataError(
            f"None of the {len(records)} records of problem {settings.problem} has a label "
            f"{label}: {made}.{hint}"
        )
    raise DataError(
        f"The label {label} has one class ({labelled[label].iloc[0]!s}) in all "
        f"{len(labelled)} labelled records of problem {settings.problem}, before any sampling "
        f"or split (data.sample_fraction and split.test_fraction are not the cause): {made}."
        f"{hint} A classifier needs at least two classes."
    )


def _made_of(
    problem: Problem,
    label: str,
    sources: list[str],
    tables: dict[str, pd.DataFrame],
    records: pd.DataFrame,
) -> str:
    """What the label is made of, and what those columns hold, in words."""
    held = []
    for column in sources:
        where = [name for name, table in tables.items() if column in table.columns]
        held.append(
            f"column {column}"
            + (f" of table {', '.join(where)}" if where else " (made by records())")
            + f" holds {_holds(records[column])}"
        )
    if getattr(problem.module, "label", None) is None:
        return held[0] if held else f"column {label}"
    made = f"it is made by label() in {problem.folder / 'problem.py'}"
    return made + (f" from {'; '.join(held)}" if held else "")


def _holds(values: pd.Series) -> str:
    known = values.dropna()
    if known.empty:
        return f"no value in its {len(values)} records"
    distinct = known.unique()
    what = (
        f"one value ({distinct[0]!s})" if len(distinct) == 1 else f"{len(distinct)} distinct values"
    )
    return f"{what} in {len(known)} of {len(values)} records"


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
    return data.with_iso_times(typed, settings.features.datetime)
