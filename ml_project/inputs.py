"""What a command reads of an env: its problem, its tables and their files, then its rows.

The sequence "load the problem -> the table paths -> read -> prepare" that training, validation
and the gate's held-out rows share, written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from ml_project.problem import Problem, load_problem
from ml_project.records import PreparedData, file_digests, prepare_data, read_tables, table_paths
from ml_project.settings import Settings


@dataclass(frozen=True)
class Inputs:
    """An env's problem and table files; its tables (and the files' digests) once `read`."""

    settings: Settings
    problem: Problem
    paths: dict[str, Path]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)  # sha256 of each table's file

    def read(self) -> Inputs:
        return replace(self, tables=read_tables(self.paths), digests=file_digests(self.paths))

    @property
    def source(self) -> str:
        """The first table's file: where the rows come from, for an MLflow dataset."""
        return str(next(iter(self.paths.values())))

    def prepare(self) -> PreparedData:
        return prepare_data(self.settings, self.problem, self.tables)


def locate(settings: Settings, root: Path) -> Inputs:
    """The env's problem (imported and checked) and its table files, nothing read yet."""
    return Inputs(settings, load_problem(settings, root), table_paths(settings, root))


def read_inputs(settings: Settings, root: Path) -> Inputs:
    return locate(settings, root).read()
