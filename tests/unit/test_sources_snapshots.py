"""Snapshots (ml_project/snapshots.py) and how `reproduce` picks its data (reproduce.py): files
written once by content, and the line saying which data a rebuild read."""

import os

import pandas as pd

from ml_project import comparisons, data, reproduce, snapshots


def kept(tmp_path, frame: pd.DataFrame) -> snapshots.Kept:
    folder = tmp_path / "scratch"
    return snapshots.write_local(folder, "orders", object(), frame, whole=False)


def test_a_snapshot_is_parquet_named_by_the_rows_digest(tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "at": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    snapshot = kept(tmp_path, frame)
    assert snapshot.sha256 == data.frame_digest(frame) and snapshot.rows == 2
    assert snapshot.file.name == f"{snapshot.sha256}.parquet"
    assert data.frame_digest(pd.read_parquet(snapshot.file)) == snapshot.sha256


def test_a_whole_local_file_is_kept_as_its_bytes(tmp_path):
    path = tmp_path / "t.csv.zip"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False, compression="zip")
    snapshot = snapshots.write_local(tmp_path / "s", "t", path, pd.DataFrame(), whole=True)
    assert snapshot.file.name == f"{data.file_digest(path)}.csv.zip"
    assert snapshot.file.read_bytes() == path.read_bytes()


def test_the_size_guard_names_the_table_and_the_setting(tmp_path):
    snapshot = kept(tmp_path, pd.DataFrame({"id": range(1000)}))
    assert snapshots.too_large(snapshot, 500) == ""
    size = snapshot.file.stat().st_size / 1e6
    assert snapshots.too_large(snapshot, 0.0001) == (
        f"orders ({size:.3g} MB > data.snapshot.max_mb=0.0001)"
    )


def test_a_location_is_written_once_per_content(tmp_path):
    frame = pd.DataFrame({"id": [1, 2]})
    uri = snapshots.store(kept(tmp_path, frame), "snaps", root=tmp_path)
    assert uri == str(tmp_path / "snaps" / "orders" / f"{data.frame_digest(frame)}.parquet")
    os.utime(uri, (1, 1))
    assert snapshots.store(kept(tmp_path, frame), "snaps", root=tmp_path) == uri
    assert os.stat(uri).st_mtime == 1  # the same content: not written again
    assert [p.name for p in (tmp_path / "snaps" / "orders").iterdir()] == [os.path.basename(uri)]


def test_reproduce_reads_the_snapshots_unless_told_otherwise(tmp_path):
    frame = pd.DataFrame({"id": [1, 2]})
    uri = snapshots.store(kept(tmp_path, frame), str(tmp_path / "snaps"), root=tmp_path)
    tags = {"data.snapshot": "kept", "data.table.orders.snapshot": uri}
    chosen, line = reproduce.snapshot_overrides(
        tags, {"orders": None, "shops": None}, tmp_path / "work", "", from_source=False
    )
    assert pd.read_parquet(chosen["orders"]).equals(frame) and chosen["shops"] is None
    assert line.startswith("data: read from the snapshots kept at training (orders)")
    assert "today's sources (not kept): shops" in line
    same, line = reproduce.snapshot_overrides(
        tags, {"orders": None}, tmp_path / "work", "", from_source=True
    )
    assert same == {"orders": None} and "--from-source" in line
    off = {"data.snapshot": "off (data.snapshot.keep: false)"}
    _, line = reproduce.snapshot_overrides(
        off, {"orders": None}, tmp_path / "work", "", from_source=False
    )
    assert "the data is not kept" in line and "keep: false" in line


def data_step(records: int, digest: str = "d") -> comparisons.DataStep:
    return comparisons.DataStep(
        comparisons.DIFFERENT,
        digests={"digest": comparisons.Pair("d", digest)},
        rows={
            "records": comparisons.Pair(1500, records),
            "used": comparisons.Pair(794, 794),
        },
    )


def test_a_subset_snapshot_differs_only_in_the_counts_before_sampling():
    subset = {"data.snapshot": "subset"}
    [step] = reproduce.subset_data_step(subset, [data_step(794)])
    assert step.status == comparisons.IDENTICAL
    [step] = reproduce.subset_data_step(subset, [data_step(794, digest="other")])
    assert step.status == comparisons.DIFFERENT  # the rows used differ: data changed
    [step] = reproduce.subset_data_step({"data.snapshot": "kept"}, [data_step(794)])
    assert step.status == comparisons.DIFFERENT  # a whole snapshot must match in every count
