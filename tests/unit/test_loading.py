"""The platform's loader (loading.py) on model folders written here: what it refuses and how
it reads the files it checks."""

import builtins
from pathlib import Path

import pytest
import skops.io
import yaml
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_project import loading
from ml_project.errors import RegistryError


def model_folder(folder: Path, model: object) -> Path:
    """A model folder as MLflow's sklearn flavor writes it: MLmodel naming a skops file."""
    folder.mkdir()
    skops.io.dump(model, folder / "model.skops")
    flavor = {"pickled_model": "model.skops", "serialization_format": "skops"}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavor}}))
    return folder


def test_a_file_naming_an_untrusted_type_is_refused_and_the_type_named(tmp_path):
    """skops' own audit refuses the file before anything in it is created; the message names
    the types outside the project's list (and skops' defaults)."""
    folder = model_folder(tmp_path / "m", make_pipeline(FunctionTransformer(func=builtins.print)))
    trusted = ["sklearn.pipeline.Pipeline", "sklearn.preprocessing._function_transformer."
               "FunctionTransformer"]  # fmt: skip
    with pytest.raises(RegistryError, match=r"does not trust: builtins.print\. It was not loaded"):
        loading.load_sklearn(str(folder), trusted, local=folder)


def test_a_file_of_trusted_types_loads_and_files_that_changed_are_refused(tmp_path):
    model = make_pipeline(StandardScaler()).fit([[0.0], [1.0], [2.0]])
    folder = model_folder(tmp_path / "m", model)
    trusted = ["sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler"]
    recorded = loading.file_digests(folder)
    loaded = loading.load_sklearn(str(folder), trusted, local=folder, recorded=recorded)
    assert loaded.transform([[4.0]]).tolist() == model.transform([[4.0]]).tolist()
    mlmodel = loading.read_mlmodel(folder)
    assert mlmodel == yaml.safe_load((folder / "MLmodel").read_text())
    skops.io.dump(make_pipeline(StandardScaler()).fit([[5.0], [9.0]]), folder / "model.skops")
    with pytest.raises(RegistryError, match="model.skops differ from the sha256 recorded"):
        loading.load_sklearn(str(folder), trusted, local=folder, recorded=recorded, mlmodel=mlmodel)
