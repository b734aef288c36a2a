"""What a new batch is checked for before its scores count: repeated keys and the model-input
check beside the scoring (predict.py), and how `show` prints a promotion history whose reasons
run long (cli.py)."""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_project.errors import DataError
from ml_project.predict import CHECK_ASIDE, DuplicateKeys, checked
from ml_project.promotion import Description
from ml_project.results import plain
from ml_project.views import HISTORY_INDENT, SHOW_WIDTH, show_text, wrapped
from tests.conftest import imported_by


def counted(chunks, key_columns=("id",)) -> DuplicateKeys:
    keys = DuplicateKeys.of_batch(chunks[0].columns, key_columns)
    assert keys is not None
    for chunk in chunks:
        keys.add(chunk)
    return keys


def test_repeated_keys_are_counted_within_and_across_chunks():
    keys = counted(
        [pd.DataFrame({"id": [1, 2, 3, 3], "x": 0.5}), pd.DataFrame({"id": [4, 2, 5], "x": 0.5})]
    )
    assert keys.rows == 2 and keys.example == "id=3"  # the second 3, then 2 again
    assert plain(keys) == {"columns": ["id"], "rows": 2, "example": "id=3"}


def test_a_key_is_the_same_whatever_type_a_chunk_read_it_as():
    """A CSV chunk with a gap reads integers as floats; one with a letter reads them as text."""
    keys = counted(
        [
            pd.DataFrame({"id": [5, 6]}),
            pd.DataFrame({"id": [5.0, np.nan, 7.5]}),
            pd.DataFrame({"id": ["6", "7.5", "A1"]}),
        ]
    )
    assert keys.rows == 3


def test_a_row_with_a_missing_key_value_repeats_nothing():
    keys = counted([pd.DataFrame({"id": [np.nan, None, 1]}), pd.DataFrame({"id": [np.nan]})])
    assert keys.rows == 0 and keys.example == ""


def test_a_key_of_several_columns_repeats_only_as_a_whole():
    chunk = pd.DataFrame({"day": [1, 1, 2, 1], "store": ["A", "B", "A", "A"]})
    keys = counted([chunk], key_columns=("day", "store"))
    assert keys.rows == 1 and keys.example == "day=1, store=A"


def test_a_batch_without_every_key_column_is_not_checked():
    assert DuplicateKeys.of_batch(["day", "x"], ("day", "store")) is None
    assert DuplicateKeys.of_batch(["day", "x"], ()) is None


# One-row chunks on 600 rows (a DataFrame each: 5,000 of them took ~6 s), the others on 5,000.
@pytest.mark.parametrize(("chunk_rows", "rows"), [(1, 600), (7, 5000), (100, 5000), (5000, 5000)])
def test_counting_in_chunks_equals_pandas_on_the_whole_file(chunk_rows, rows):
    ids = np.random.default_rng(3).integers(0, rows * 3 // 5, rows)  # ~half the rows repeat a key
    whole = pd.DataFrame({"id": ids})
    chunks = [whole.iloc[at : at + chunk_rows] for at in range(0, len(whole), chunk_rows)]
    keys = counted(chunks)
    assert keys.rows == int(whole.duplicated().sum()) > rows // 5
    assert keys.example == f"id={whole['id'][whole.duplicated()].iloc[0]}"
    assert sum(len(run) for run in keys._runs) == whole["id"].nunique()  # 8 bytes a key
    assert len(keys._runs) <= 2 * np.log2(len(whole))  # merged as they grow


def history_entry(reason: str) -> dict:
    return {
        "time": "2026-12-07T08:00:00.000000Z", "alias": "champion", "action": "forced",
        "from_version": "1", "to_version": "3", "actor": "someone", "commit": "0123456789abcdef",
        "reason": reason,
    }  # fmt: skip


def described(*reasons: str) -> Description:
    return Description(
        model_name="m_dev", env="dev", tracking_uri="sqlite:///mlflow.db", problem="p",
        task="binary", primary_metric="roc_auc", aliases={"champion": "3"}, versions=[],
        history=[history_entry(reason) for reason in reasons],
    )  # fmt: skip


def test_show_wraps_a_long_history_reason_and_keeps_every_word():
    reason = (
        "passed the gate: roc_auc 0.8123 is better than the champion's 0.8011 by 0.0112 "
        "(tolerance 0.005, relative), log_loss 0.41 within its ceiling 0.65, and the lead over "
        "the feature-blind baseline 0.31 above the required 0.05; a-very-long-hyphenated-word "
        "https://example.invalid/a/path/that/is/longer/than/any/line/could/ever/hold/in/show/x"
    )
    lines = show_text(described(reason, "short"), history_lines=10).splitlines()
    start = next(at for at, line in enumerate(lines) if "passed the gate" in line)
    head = lines[start].index("passed the gate")
    wrapped_lines = [lines[start][head:]]
    for line in lines[start + 1 :]:
        if not line.startswith(" " * HISTORY_INDENT):
            break
        assert line[HISTORY_INDENT] != " "
        wrapped_lines.append(line[HISTORY_INDENT:])
    assert len(wrapped_lines) >= 4  # wrapped, not cut
    assert " ".join(wrapped_lines) == reason  # every word, in order
    for line in lines[start : start + len(wrapped_lines)]:
        assert len(line) <= SHOW_WIDTH or line.split()[-1].startswith("https:")  # one long word
    assert lines[-1].endswith("someone@0123456  short")


def test_an_empty_reason_leaves_no_trailing_space():
    assert wrapped("  head  ", "") == ["  head"]
    assert wrapped("h ", "a b") == ["h a b"]


def test_a_long_failure_is_recorded_up_to_a_word_and_says_it_was_cut():
    from ml_project.run_life import REASON_CHARACTERS, failure_reason

    assert failure_reason(ValueError("bad  value\n in x")) == "ValueError: bad value in x"
    long = failure_reason(ValueError("column " * 400))
    assert long.endswith("column [...]") and len(long) <= REASON_CHARACTERS + 20


def children() -> set[int]:
    """This process's child processes, as Linux lists them."""
    found: set[int] = set()
    for listing in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        found.update(int(pid) for pid in listing.read_text().split())
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="the check runs aside only on Linux")
@pytest.mark.parametrize("aside", [True, False])
def test_a_chunk_checked_aside_says_what_the_check_said(aside, monkeypatch):
    """A chunk's model-input check in a forked child (or, not aside, here): passed, a DataError
    with its own paragraph, anything else as an error naming it; the child is always reaped."""
    monkeypatch.delenv(CHECK_ASIDE, raising=False)
    before = children()  # an xdist worker may hold others (the preloaded CLI server)
    chunk = pd.DataFrame({"x": [1.0, 2.0]})
    parent = os.getpid()
    ran_in: list[int] = []

    def passes(frame: pd.DataFrame) -> None:
        ran_in.append(os.getpid())
        assert frame.equals(chunk)

    with checked(passes, chunk, aside=aside) as verdict:
        verdict()
    assert (ran_in == []) if aside else (ran_in == [parent])  # a child's list is its own

    def refuses(frame: pd.DataFrame) -> None:
        if os.getpid() != parent or not aside:
            raise DataError(f"batch.parquet: column x must be below 2 ({len(frame)} rows)")

    refused = r"^batch.parquet: column x must be below 2 \(2 rows\)$"
    with pytest.raises(DataError, match=refused), checked(refuses, chunk, aside=aside) as verdict:
        verdict()

    def breaks(frame: pd.DataFrame) -> None:
        raise KeyError("boom")

    with (
        pytest.raises((RuntimeError, KeyError), match="boom"),
        checked(breaks, chunk, aside=aside) as verdict,
    ):
        verdict()
    assert children() == before  # no child left behind


@pytest.mark.skipif(sys.platform != "linux", reason="the check runs aside only on Linux")
def test_a_child_still_checking_when_scoring_fails_is_stopped(monkeypatch):
    monkeypatch.delenv(CHECK_ASIDE, raising=False)
    before = children()  # an xdist worker may hold others (the preloaded CLI server)
    started = time.monotonic()
    with (
        pytest.raises(ValueError, match="scoring failed"),
        checked(lambda frame: time.sleep(60), pd.DataFrame({"x": [1]}), aside=True),
    ):
        raise ValueError("scoring failed")
    assert time.monotonic() - started < 30
    assert children() == before


def test_checking_aside_can_be_turned_off(monkeypatch):
    monkeypatch.setenv(CHECK_ASIDE, "0")
    ran_in: list[int] = []
    with checked(lambda frame: ran_in.append(os.getpid()), pd.DataFrame(), aside=True) as verdict:
        verdict()
    assert ran_in == [os.getpid()]


def test_scoring_forks_its_check_before_importing_the_model_libraries():
    """A small batch costs its imports: what runs before the first chunk's check is forked
    (the CLI, the settings, reading) must not import MLflow, scikit-learn, skops or
    great-expectations, so the parent's import of the first three (and its registry look-up)
    overlaps the child's import of the fourth. SciPy, which both need, comes before the fork,
    and so before MLflow: skops' import names each SciPy ufunc by walking sys.modules in import
    order, and with SciPy ahead of MLflow's modules the walk stops early (0.5-1 s of CPU)."""
    watched = ("mlflow", "sklearn", "skops", "great_expectations", "scipy.special")
    imported = imported_by("ml_project.cli, ml_project.predict, ml_project.loading", watched)
    assert imported == ["scipy.special"]
