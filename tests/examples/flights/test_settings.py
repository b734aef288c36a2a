"""The flights example's settings resolve in every env, its suites name only known parameters,
and its gate tightens from dev to prod."""

import re
from pathlib import Path

import pytest

from ml_project import validation
from ml_project.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = {"flights": ["flights", "weather", "model_input"]}
ENVS = ("dev", "staging", "prod")


@pytest.mark.parametrize("problem", EXAMPLES)
def test_each_example_resolves_in_every_env(problem):
    for env in ENVS:
        settings = load_settings(env, problem=problem, root=ROOT)
        assert settings.model_name.endswith(f"_{env}") and settings.problem == problem


@pytest.mark.parametrize(("problem", "tables"), EXAMPLES.items())
def test_the_examples_suites_resolve_every_parameter(problem, tables):
    settings = load_settings("prod", problem=problem, root=ROOT)
    assert list(validation.suite_tables(settings)) == tables
    parameters = validation.suite_parameters(settings)
    for table in tables:
        spec = validation.read_suite(validation.suite_path(ROOT, table, settings), parameters)
        assert spec.table == table
        assert len(spec.expectations) >= 15
        # every `$name` filled in (a regex may end in `$`: no value starts with one)
        assert not re.search(r"'\$\w", repr([item["kwargs"] for item in spec.expectations]))


@pytest.mark.parametrize("problem", EXAMPLES)
def test_every_env_has_a_gate_and_prod_is_the_strictest(problem):
    gates = {env: load_settings(env, problem=problem, root=ROOT).gate for env in ENVS}
    assert gates["dev"].tolerance > gates["staging"].tolerance > gates["prod"].tolerance
    assert gates["dev"].min_test_rows < gates["prod"].min_test_rows
    for metric, floor in gates["prod"].floors.items():
        assert gates["dev"].floors[metric] <= gates["staging"].floors[metric] <= floor
    for metric, ceiling in gates["prod"].ceilings.items():
        assert gates["dev"].ceilings[metric] >= gates["staging"].ceilings[metric] >= ceiling
    assert all(item.compare_with_champion for item in gates.values())
