"""The part of GitHub that tests/ci/github.py plays must read expressions and filters as GitHub
does, or the workflow-event test would pass on workflows GitHub runs otherwise."""

import pytest

from tests.ci.github import Event, condition, evaluate, glob_match, takes

CONTEXT = {
    "github": {
        "event_name": "pull_request",
        "repository": "team/project",
        "sha": "abc",
        "event": {"pull_request": {"head": {"repo": {"full_name": "someone/project"}}}},
    },
    "needs": {"monitor": {"outputs": {"tag": "", "drift": "true"}}},
    "inputs": {},
    "env": {"MLFLOW_TRACKING_URI": ""},
    "matrix": {"problem": ""},
}


def functions(success=True):
    return {
        "success": lambda: success,
        "failure": lambda: not success,
        "always": lambda: True,
        "cancelled": lambda: False,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ matrix.problem || 'default' }}", "default"),
        ("staging-${{ matrix.problem || 'default' }}", "staging-default"),
        ("${{ github.event.pull_request.head.sha || github.sha }}", "abc"),
        ("${{ needs.monitor.outputs.tag != '' }}", False),
        ("${{ needs.monitor.outputs.drift == 'TRUE' }}", True),  # strings compare caselessly
        ("${{ needs.missing.outputs.tag == '' }}", True),  # null equals ''
        ("${{ !cancelled() && (inputs.retrain || needs.monitor.outputs.drift == 'true') }}", True),
        ("${{ inputs.retrain }}", None),
    ],
)
def test_expressions_evaluate_as_on_github(text, expected):
    assert evaluate(text, CONTEXT, functions()) == expected


def test_an_if_without_a_status_function_needs_the_earlier_steps_to_pass():
    fork = (
        "github.event_name == 'push' || "
        "github.event.pull_request.head.repo.full_name != github.repository"
    )
    assert condition(fork, CONTEXT, functions()) is True
    assert condition(fork, CONTEXT, functions(success=False)) is False
    assert condition(
        "${{ !cancelled() && env.MLFLOW_TRACKING_URI == '' }}", CONTEXT, functions(False)
    )


@pytest.mark.parametrize(
    ("ref", "started"),
    [
        ("refs/tags/v1.2.0", True),
        ("refs/tags/v1.2.0-rc1", False),
        ("refs/tags/other", False),
        ("refs/heads/main", False),
    ],
)
def test_the_release_tag_filter(ref, started):
    on = {"push": {"tags": ["v*", "!v*-*"]}}
    assert takes(on, Event("push", ref, "abc")) is started


def test_branch_patterns():
    assert glob_match("feature/x", "**") and not glob_match("feature/x", "*")
    assert not takes({"push": {"branches": ["**"]}}, Event("push", "refs/tags/v1.0.0", "abc"))
