"""The model as training logs it: MLflow's sklearn flavor without MLflow's reload of the files it
wrote, and MLflow's serving check of the input example made on the model in memory instead."""

import logging

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml_project import pipeline

SKLEARN_TYPES = [
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
]


def fitted() -> tuple[Pipeline, pd.DataFrame]:
    rows = pd.DataFrame({"size": np.arange(40.0), "weight": np.arange(40.0) % 7})
    model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    return model.fit(rows, (rows["size"] > 20).astype("int64")), rows


def signature() -> ModelSignature:
    inputs = Schema([ColSpec("double", "size"), ColSpec("double", "weight")])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("long", "prediction")]))


def test_the_flavor_logs_what_mlflow_sklearn_log_model_logs(tracking_uri, tmp_path):
    model, rows = fitted()
    common = {
        "signature": signature(),
        "input_example": rows.head(5),
        "pip_requirements": ["scikit-learn"],
        "skops_trusted_types": SKLEARN_TYPES,
    }
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        ours = Model.log(None, pipeline._Sklearn, sk_model=model, name="ours", **common)
        theirs = mlflow.sklearn.log_model(model, name="theirs", **common)
    files = {}
    for info in (ours, theirs):
        local = tmp_path / info.name
        mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(local))
        meta = yaml.safe_load((local / "MLmodel").read_text())
        names = sorted(path.name for path in local.iterdir())
        files[info.name] = (names, meta["flavors"], meta["signature"])
    assert files["ours"] == files["theirs"]
    assert "serving_input_example.json" in files["ours"][0]
    loaded = mlflow.sklearn.load_model(ours.model_uri)  # what serving and reproduce read
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ml_project.pipeline"]


def test_the_input_example_is_served_on_the_model_in_memory_and_mlflow_reloads_nothing(
    tracking_uri, monkeypatch, caplog
):
    """Model.log tries the example (a reload) only when asked, and save_model never gets the
    option; our check parses the example by the signature and predicts with the fitted model."""
    model, rows = fitted()
    reloads = []
    monkeypatch.setattr(
        "mlflow.models.utils._validate_serving_input", lambda **kwargs: reloads.append(kwargs)
    )
    mlflow.set_tracking_uri(tracking_uri)
    infos = {}
    with mlflow.start_run():
        for validate in (True, False):
            infos[validate] = Model.log(
                None,
                pipeline._Sklearn,
                sk_model=model,
                name=f"model-{validate}",
                signature=signature(),
                input_example=rows.head(5),
                skops_trusted_types=SKLEARN_TYPES,
                pip_requirements=["scikit-learn"],
                validate_serving_input=validate,
            )
    assert len(reloads) == 1  # the one asked for
    uri = infos[False].model_uri
    with caplog.at_level(logging.WARNING, logger="ml_project.pipeline"):
        pipeline.check_serving_example(model, uri, rows.head(5))
    assert warnings_of(caplog) == []
    with caplog.at_level(logging.WARNING, logger="ml_project.pipeline"):
        pipeline.check_serving_example(model, uri, rows.head(5).drop(columns="size"))
    (warning,) = warnings_of(caplog)
    assert "does not serve" in warning and "size" in warning
