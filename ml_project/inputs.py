"""What a command reads of an env: its problem, its tables and their files, then its rows.

The sequence "load the problem -> the table paths -> read -> prepare" that training, validation
and the gate's held-out rows share, written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ml_project.problem import Problem, load_problem
from ml_project.records import PreparedData, file_digests, prepare_data, read_tables, table_paths
from ml_project.settings import Settings
from ml_project.sources import Location, is_local_file


@dataclass(frozen=True)
class Inputs:
    """An env's problem and table sources; its tables (and their digests) once `read`."""

    settings: Settings
    problem: Problem
    paths: dict[str, Location]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # sources.digest of each table

    def read(self) -> Inputs:
        tables = read_tables(self.paths)
        return replace(self, tables=tables, digests=file_digests(self.paths, tables))

    @property
    def source(self) -> Any:
        """The first table's source: where the rows come from, for an MLflow dataset."""
        return dataset_source(list(self.paths.values())[:1])

    def prepare(self) -> PreparedData:
        return prepare_data(self.settings, self.problem, self.tables)


def dataset_source(locations: Sequence[Location]) -> Any:
    """An MLflow dataset's source: the tables' files (as text), or, when one is a query or a
    URL (which no MLflow resolver reads), their sources as the tags of a code source."""
    text = ", ".join(str(location) for location in locations)
    if all(is_local_file(location) for location in locations):
        return text
    from mlflow.data.code_dataset_source import CodeDatasetSource

    return CodeDatasetSource(tags={"tables": text})


def locate(settings: Settings, root: Path) -> Inputs:
    """The env's problem (imported and checked) and its table files, nothing read yet."""
    return Inputs(settings, load_problem(settings, root), table_paths(settings, root))


def read_inputs(settings: Settings, root: Path) -> Inputs:
    return locate(settings, root).read()
