from pathlib import Path

import pytest
from pydantic import ValidationError

from ml_project.errors import ConfigError
from ml_project.settings import (
    apply_assignment,
    deep_merge,
    load_settings,
    parse_assignment,
)

ROOT = Path(__file__).resolve().parents[2]


def test_deep_merge_merges_dicts_and_replaces_lists_and_scalars():
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2, 3], "s": "base"}
    merged = deep_merge(base, {"a": {"y": 20}, "l": [9], "s": "over"})
    assert merged == {"a": {"x": 1, "y": 20}, "l": [9], "s": "over"}
    assert base["a"]["y"] == 2  # inputs untouched


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_env_resolves(env):
    settings = load_settings(env, root=ROOT)
    assert settings.env == env
    assert settings.tracking.model_name.endswith(env)
    assert settings.features.categorical == ("carrier", "origin", "dest")


def test_env_overlays_set_their_fractions_and_tree_policy():
    assert load_settings("staging", root=ROOT).data.sample_fraction == 0.1
    assert load_settings("prod", root=ROOT).data.sample_fraction == 1.0
    assert not load_settings("dev", root=ROOT).lineage.require_clean_tree
    assert load_settings("prod", root=ROOT).lineage.require_clean_tree
    # the overlay changed one key of `model`; the rest of the section survives
    dev = load_settings("dev", root=ROOT)
    assert dev.params.max_iter == 100 and dev.model.learning_rate == 0.1


def test_settings_are_frozen():
    settings = load_settings("dev", root=ROOT)
    with pytest.raises(ValidationError):
        settings.seed = 3


def test_cli_layer_wins_over_files():
    settings = load_settings(
        "staging", overrides=("params.max_iter=7", "data.sample_fraction=0.2"), seed=9, root=ROOT
    )
    assert (settings.params.max_iter, settings.data.sample_fraction, settings.seed) == (7, 0.2, 9)


def test_config_hash_follows_content():
    a = load_settings("dev", root=ROOT)
    assert a.config_hash() == load_settings("dev", root=ROOT).config_hash()
    assert a.config_hash() != load_settings("dev", seed=1, root=ROOT).config_hash()


def _env_folder(tmp_path, overlay_text):
    folder = tmp_path / "environments"
    folder.mkdir()
    (folder / "base.yaml").write_text((ROOT / "environments" / "base.yaml").read_text())
    (folder / "dev.yaml").write_text(overlay_text)
    return tmp_path


def test_unknown_key_names_key_and_file(tmp_path):
    root = _env_folder(tmp_path, "model:\n  max_iters: 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings("dev", root=root)
    message = str(caught.value)
    assert "params.max_iters" in message and "dev.yaml" in message


def test_wrong_type_names_key_and_file(tmp_path):
    root = _env_folder(tmp_path, "model:\n  max_iter: many\n")
    with pytest.raises(ConfigError, match=r"model\.max_iter .*dev\.yaml"):
        load_settings("dev", root=root)


def test_malformed_yaml_names_file(tmp_path):
    root = _env_folder(tmp_path, "model: [unclosed\n")
    with pytest.raises(ConfigError, match="dev.yaml is not valid YAML"):
        load_settings("dev", root=root)


def test_unknown_env_and_missing_overlay(tmp_path):
    with pytest.raises(ConfigError, match="Unknown env 'qa'"):
        load_settings("qa", root=ROOT)
    root = _env_folder(tmp_path, "{}\n")
    with pytest.raises(ConfigError, match="staging.yaml does not exist"):
        load_settings("staging", root=root)


def test_assignment_parsing_and_unknown_keys():
    assert parse_assignment("params.max_iter=50") == (("model", "max_iter"), 50)
    assert parse_assignment("data.flights=a.csv") == (("data", "flights"), "a.csv")
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        parse_assignment("params.max_iter")
    config = {"model": {"max_iter": 1}}
    assert apply_assignment(config, ("model", "max_iter"), 3) == {"model": {"max_iter": 3}}
    with pytest.raises(ConfigError, match="no key 'depth'"):
        apply_assignment(config, ("model", "depth"), 3)
    with pytest.raises(ConfigError, match="that is a section"):
        apply_assignment(config, ("model",), 3)


def test_overlap_between_categorical_and_numeric_is_rejected():
    with pytest.raises(ConfigError, match="both categorical and numeric"):
        load_settings("dev", overrides=("features.numeric=[carrier, distance]",), root=ROOT)
