"""The default model's encoding step (estimators.TabularEncoder): the numbers, column order and
dtype of the ColumnTransformer it replaced, so a model trained on the same data is the same."""

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from ml_project import estimators, input_rules
from ml_project.settings import FeatureSettings
from ml_project.time_features import TimeFeatures
from tests.synthetic import make_table


def column_transformer(categorical, datetime=()):
    """The encoder as it was before TabularEncoder: the reference every answer is compared to."""
    steps = [
        (
            "categorical",
            OrdinalEncoder(
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                encoded_missing_value=np.nan,
                dtype=np.float64,
            ),
            list(categorical),
        )
    ]
    if datetime:
        steps.append(("datetime", TimeFeatures(), list(datetime)))
    return ColumnTransformer(steps, remainder="passthrough", verbose_feature_names_out=False)


def frames(rows=400, seed=0):
    """Train rows (text with None and NaN gaps, pandas' str dtype, a number used as a category,
    timestamps with gaps and junk), then rows with unseen and missing values."""
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "colour": pd.Series(rng.choice(["red", "blue", "grey", None], rows), dtype=object),
            "count": rng.integers(0, 5, rows),
            "size": pd.Series(rng.choice(["S", "M", "L"], rows), dtype="str"),
            "when": rng.choice(["2024-01-01T10:00:00Z", "2023-05-06", None, "junk"], rows),
            "grade": rng.choice([1.0, 2.0, np.nan], rows),
        }
    )
    train.loc[3, "colour"] = np.nan
    test = train.copy()
    test.loc[0, "colour"] = "violet"  # unseen
    test.loc[1, "size"] = "XXL"
    test.loc[2, "size"] = np.nan  # missing where training had none
    test.loc[4, "grade"] = 7.0  # an unseen number
    test.loc[5, "colour"] = 3  # not even text
    return train, test


def assert_same_array(left, right):
    assert left.dtype == right.dtype and left.shape == right.shape
    if left.dtype == object:
        pd.testing.assert_frame_equal(pd.DataFrame(left), pd.DataFrame(right))
    else:
        assert left.tobytes() == right.tobytes()  # bit for bit, NaN where NaN


@pytest.mark.parametrize(
    ("categorical", "datetime"),
    [
        (["colour", "size"], []),
        (["size", "colour"], ["when"]),
        (["colour", "grade"], ["when"]),  # a number column as a category: OrdinalEncoder's way
        ([], ["when"]),
        (["colour"], []),
        ([], []),
    ],
)
def test_the_encoder_gives_what_the_column_transformer_gave(categorical, datetime):
    train, test = frames()
    before = column_transformer(categorical, datetime).fit(train)
    after = estimators.encoder(categorical, datetime).fit(train)
    for rows in (train, test, test.iloc[[0]], test.iloc[[5]], test[test.columns[::-1]]):
        assert_same_array(after.transform(rows), before.transform(rows))
    assert list(after.get_feature_names_out()) == list(before.get_feature_names_out())


def test_unseen_and_missing_categories_encode_as_nan_and_the_rest_by_position():
    """As OrdinalEncoder: sorted text, then None (a category of its own when trained on), NaN
    and anything unseen (text, or a number) -> NaN."""
    train = pd.DataFrame({"c": pd.Series(["red", "blue", None, np.nan, "grey"], dtype=object)})
    step = estimators.encoder(["c"]).fit(train)
    rows = pd.DataFrame({"c": pd.Series(["blue", "grey", "red", None, np.nan, "violet", 3],
                                        dtype=object)})  # fmt: skip
    codes = step.transform(rows)[:, 0]
    np.testing.assert_array_equal(codes, [0.0, 1.0, 2.0, 3.0, np.nan, np.nan, np.nan])
    assert_same_array(step.transform(rows), column_transformer(["c"]).fit(train).transform(rows))


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_model_fitted_with_it_answers_bit_for_bit_as_before(task):
    table = make_table(task, 800)
    table.loc[::17, "colour"] = None
    features = FeatureSettings(categorical=("colour",), numeric=("x1", "x2", "x3"))
    rows = table[list(features.columns)].astype({"colour": object})
    model = estimators.tabular_model(features=features, task=task, params={"max_iter": 30}, seed=5)
    before = Pipeline([("encode", column_transformer(["colour"])), ("model", model[-1])])
    model.fit(rows, table["target"])
    before.fit(rows, table["target"])
    unseen = rows.head(20).assign(colour="violet")
    for batch in (rows, unseen, rows.iloc[[3]]):
        assert model.predict(batch).tobytes() == before.predict(batch).tobytes()
        if task == "binary":
            assert model.predict_proba(batch).tobytes() == before.predict_proba(batch).tobytes()


def test_it_loads_with_the_allow_list_and_keeps_no_per_process_lookup():
    train, test = frames()
    step = estimators.encoder(["colour", "size"], ["when"]).fit(train)
    expected = step.transform(test)  # builds the text lookup once
    dumped = skops.io.dumps(step)
    assert b"_lookups" not in dumped
    trusted = [*estimators.TRUSTED_TYPES, *input_rules.TRUSTED_TYPES]
    assert set(skops.io.get_untrusted_types(data=dumped)) <= set(trusted)
    loaded = skops.io.loads(dumped, trusted=trusted)
    assert_same_array(loaded.transform(test), expected)


def test_it_refuses_what_it_cannot_select_from():
    train, _ = frames()
    step = estimators.encoder(["colour"]).fit(train)
    with pytest.raises(ValueError, match="columns are missing: {'size'}"):
        step.transform(train.drop(columns="size"))
    with pytest.raises(ValueError, match="needs a DataFrame"):
        step.transform(train.to_numpy())
    with pytest.raises(ValueError, match="columns are missing: {'shade'}"):
        estimators.encoder(["shade"]).fit(train)
