"""The skops file's content digest: the same model saved twice, or refitted in another process,
gives other bytes and the same digest; any change of what the file holds gives another."""

import hashlib
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier

from ml_project import model_digest
from tests.conftest import ROOT

# A fitted model and a set of words (whose order is the process's string hashing), saved by
# skops; the script prints its content digest and its bytes' sha256.
FIT_AND_SAVE = """
import hashlib, numpy as np, skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from ml_project import model_digest
rng = np.random.default_rng(3)
x = rng.normal(size=(300, 3)); y = x[:, 0] + rng.normal(size=300) > 0
model = HistGradientBoostingClassifier(max_iter={iters}, random_state=0).fit(x, y)
data = skops.io.dumps({{"model": model, "words": {{"alpha", "beta", "gamma", "delta", "eps"}}}})
print(model_digest.content_digest(data), hashlib.sha256(data).hexdigest())
"""


def fit_and_save(*, iters: int = 20, hash_seed: str = "1") -> tuple[str, str]:
    """(content digest, sha256 of the bytes) of FIT_AND_SAVE run in its own process."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", FIT_AND_SAVE.format(iters=iters)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    content, raw = done.stdout.split()
    return content, raw


def fitted(iters: int = 20) -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3))
    y = x[:, 0] + rng.normal(size=300) > 0
    return HistGradientBoostingClassifier(max_iter=iters, random_state=0).fit(x, y)


def restamped(data: bytes, when: tuple[int, ...]) -> bytes:
    """The same zip entries, each stamped `when` (as a save at another time does)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(zipfile.ZipInfo(info.filename, when), source.read(info.filename))
    return out.getvalue()


def test_two_fits_in_one_process_differ_in_bytes_not_in_content():
    first, second = skops.io.dumps(fitted()), skops.io.dumps(fitted())
    assert first != second  # the arrays' entries are named after object ids
    assert model_digest.content_digest(first) == model_digest.content_digest(second)
    later = restamped(first, (2030, 1, 2, 3, 4, 6))
    assert later != first and model_digest.content_digest(later) == model_digest.content_digest(
        first
    )
    assert model_digest.model_content_digest(fitted()) == model_digest.content_digest(first)


def test_two_processes_with_other_string_hashing_share_the_content_digest():
    content_one, raw_one = fit_and_save(hash_seed="1")
    content_two, raw_two = fit_and_save(hash_seed="2")
    assert raw_one != raw_two
    assert content_one == content_two


def test_what_the_file_holds_changes_the_digest():
    base = model_digest.model_content_digest(fitted())
    assert model_digest.model_content_digest(fitted(iters=21)) != base
    model = fitted()
    model._predictors[0][0].nodes["value"][0] += 1e-12  # one leaf value of one tree
    assert model_digest.model_content_digest(model) != base


def test_a_shared_array_is_not_two_equal_arrays():
    """Which objects are one object is part of the content (ids ranked, not dropped)."""
    array = np.arange(5.0)
    shared = model_digest.content_digest(skops.io.dumps([array, array]))
    equal = model_digest.content_digest(skops.io.dumps([array, array.copy()]))
    assert shared != equal


def test_an_entry_the_schema_does_not_name_is_hashed_too():
    data = skops.io.dumps(fitted())
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr("extra.bin", b"payload")
    assert model_digest.content_digest(out.getvalue()) != model_digest.content_digest(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"not a zip", "not a skops file \\(a zip\\)"), (None, "it has no schema.json")],
    ids=["no-zip", "no-schema"],
)
def test_a_file_that_is_no_skops_file_is_a_value_error(data, message):
    if data is None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("model.pkl", b"x")
        data = out.getvalue()
    with pytest.raises(ValueError, match=message):
        model_digest.content_digest(data)


def test_the_file_and_the_bytes_digest_alike(tmp_path):
    data = skops.io.dumps(fitted())
    (tmp_path / "model.skops").write_bytes(data)
    assert model_digest.file_content_digest(tmp_path / "model.skops") == (
        model_digest.content_digest(data)
    )
    assert hashlib.sha256(data).hexdigest() != model_digest.content_digest(data)
