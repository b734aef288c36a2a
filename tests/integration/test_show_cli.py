"""`ml-project show` through the real CLI: a history line is never cut."""

import pytest

from tests.conftest import copy_store, run_cli

pytestmark = pytest.mark.integration

REASON = (
    "incident 4711: the challenger's scores on the December batch were checked by hand against "
    "the ledger and version 1 is put back as champion until the feed's time zone is fixed; "
    "see https://example.invalid/tickets/4711/the-whole-discussion-and-the-decision-record"
)


def test_show_prints_a_long_history_reason_whole(synthetic_models, synthetic_project, tmp_path):
    trained = synthetic_models["binary"]
    uri = copy_store(trained["uri"], tmp_path)  # the shared store is not changed
    problem = ("--env", "dev", "--problem", trained["problem"])
    done = run_cli(
        "promote", *problem, "--version", "1", "--reason", REASON,
        cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_cli("show", *problem, cwd=synthetic_project, tracking_uri=uri)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = next(at for at, line in enumerate(lines) if "incident 4711" in line)
    column = lines[start].index("incident 4711")
    words = lines[start][column:].split()
    for line in lines[start + 1 :]:
        if not line.startswith(" " * 23) or not line.strip():
            break
        words += line.split()
    assert " ".join(words) == REASON  # whole: the old show stopped after 100 characters
    assert len(lines[start]) <= 100 and len(REASON) > 200
