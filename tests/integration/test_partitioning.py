"""Multi-column lake partitioning: `partition_by: [city_id, created_at]` -> `city_id=7/dt=2026-11-30/`.

The oracle reads every Parquet file on its own (no Hive inference, no replicator code): the folder a
file sits in must name the one value its rows hold, and the rows of all files must be the source's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from replicator import Replicator
from replicator.errors import ReplicatorError

from ..conftest import execute, query, write_project

NULL = "__HIVE_DEFAULT_PARTITION__"


def _setup(pg_url: str) -> None:
    execute(
        pg_url,
        "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int, zone text, price numeric(12,2),"
        " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
        # 3 cities and NULL, over 3 UTC days; zones with characters a folder name must encode.
        "INSERT INTO rides SELECT g, CASE WHEN g % 4 = 0 THEN NULL ELSE g % 4 END,"
        " (ARRAY['North', 'São Paulo/Centro', 'a=b c%'])[g % 3 + 1], g * 1.5,"
        " timestamptz '2026-11-28 12:00+00' + (g % 3) * interval '1 day', now() - interval '1 hour'"
        " FROM generate_series(1, 600) g",
    )


def _project(tmp_path: Path, pg_url: str, partition_by: str) -> Replicator:
    return Replicator.from_path(write_project(
        tmp_path, sources={"app": pg_url}, lake=str(tmp_path / "lake"), warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
        tables={"rides": f"source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"
                         f"partition_by: {partition_by}\n"}))


def _files(lake: Path) -> list[Path]:
    return sorted(p for p in (lake / "rides").rglob("*.parquet") if not p.relative_to(lake / "rides").parts[0].startswith("_"))


def _folder_values(file: Path, lake: Path) -> dict[str, str]:
    return dict(unquote(seg).split("=", 1) for seg in file.relative_to(lake / "rides").parts[:-1])


def _as_folder(value: object, key: str) -> str:
    if value is None:
        return NULL
    return value.astimezone(dt.timezone.utc).date().isoformat() if key == "dt" else str(value)  # type: ignore[attr-defined]


def _raw_rows(lake: Path) -> list[dict]:
    """Every row version of every committed file, each checked against the folder it sits in."""
    rows = []
    for file in _files(lake):
        data = pq.read_table(file).to_pylist()
        folder = _folder_values(file, lake)
        for key, column in (("city_id", "city_id"), ("zone", "zone"), ("dt", "created_at")):
            if key in folder:
                assert {_as_folder(r[column], key) for r in data} == {folder[key]}, (file, key)
        rows += data
    return rows


def _current(rows: list[dict]) -> dict[int, dict]:
    latest: dict[int, dict] = {}
    for r in sorted(rows, key=lambda r: (r["_batch_id"], r["updated_at"])):
        latest[r["id"]] = r
    return {k: r for k, r in latest.items() if not r["_deleted"]}


def _source(pg_url: str) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in query(pg_url, "SELECT id, city_id, zone, price FROM rides")}


def test_city_and_day_folders_hold_one_value_each_and_prune(tmp_path: Path, pg_url: str) -> None:
    _setup(pg_url)
    rep = _project(tmp_path, pg_url, "[city_id, created_at]")
    rep.sync("rides")
    lake = tmp_path / "lake"
    folders = {"/".join(f.relative_to(lake / "rides").parts[:-1]) for f in _files(lake)}
    assert folders == {f"city_id={c}/dt=2026-11-{d}" for c in ["1", "2", "3", NULL] for d in (28, 29, 30)}

    # A ride moves from city 1 to city 2: the new version lands in city 2's folder, the old stays in city 1's.
    execute(pg_url, "UPDATE rides SET city_id = 2, updated_at = now() WHERE id = 1")
    rep.sync("rides")
    rows = _raw_rows(lake)
    assert len(rows) == 601
    current = _current(rows)
    assert {k: (r["city_id"], r["zone"], r["price"]) for k, r in current.items()} == _source(pg_url)

    # Readers prune to one city: pyarrow with the partition types, DuckDB's Hive partitioning.
    partitioning = ds.partitioning(pa.schema([("city_id", pa.int32()), ("dt", pa.string())]), flavor="hive")
    city = ds.dataset(str(lake / "rides"), format="parquet", partitioning=partitioning,
                      exclude_invalid_files=True, ignore_prefixes=["_"])
    fragments = list(city.get_fragments(filter=ds.field("city_id") == 2))
    assert fragments and all("/city_id=2/" in f.path for f in fragments)
    got = city.to_table(filter=ds.field("city_id") == 2, columns=["id", "_batch_id"]).to_pylist()
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in rows if r["city_id"] == 2)
    nulls = city.to_table(filter=ds.field("city_id").is_null(), columns=["id"]).num_rows
    assert nulls == sum(1 for r in rows if r["city_id"] is None) == 150
    con = duckdb.connect()
    glob = str(lake / "rides" / "city_id=*" / "*" / "*.parquet")
    assert con.execute(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true) WHERE city_id = 2"
                       ).fetchone()[0] == sum(1 for r in rows if r["city_id"] == 2)

    # The warehouse holds the current state once per key.
    wh = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    assert wh.execute("SELECT count(*), count(DISTINCT id) FROM raw.rides").fetchone() == (600, 600)
    assert wh.execute("SELECT city_id FROM raw.rides WHERE id = 1").fetchone() == (2,)


def test_text_partition_values_are_percent_encoded_and_read_back(tmp_path: Path, pg_url: str) -> None:
    _setup(pg_url)
    rep = _project(tmp_path, pg_url, "zone")
    rep.sync("rides")
    lake = tmp_path / "lake"
    names = sorted({f.relative_to(lake / "rides").parts[0] for f in _files(lake)})
    assert names == ["zone=North", "zone=S%C3%A3o%20Paulo%2FCentro", "zone=a%3Db%20c%25"]
    _raw_rows(lake)  # every folder decodes to the one zone its rows hold
    data = ds.dataset(str(lake / "rides"), format="parquet", ignore_prefixes=["_"],
                      partitioning=ds.partitioning(pa.schema([("zone", pa.string())]), flavor="hive"))
    got = data.to_table(filter=ds.field("zone") == "São Paulo/Centro", columns=["id"]).num_rows
    assert got == int(query(pg_url, "SELECT count(*) FROM rides WHERE zone = 'São Paulo/Centro'")[0][0]) == 200


def test_deletion_markers_land_in_the_folder_of_the_row_they_delete(tmp_path: Path, pg_url: str) -> None:
    _setup(pg_url)
    rep = _project(tmp_path, pg_url, "[city_id, created_at]")
    rep.sync("rides")
    execute(pg_url, "DELETE FROM rides WHERE id IN (5, 8)")  # id 5: city 1, day 30; id 8: NULL city, day 30
    report = rep.reconcile("rides", apply_deletes=True)
    assert sorted(report.deleted_keys) == [(5,), (8,)]
    lake = tmp_path / "lake"
    markers = {}
    for file in _files(lake):
        for r in pq.read_table(file).to_pylist():
            if r["_deleted"]:
                markers[r["id"]] = "/".join(file.relative_to(lake / "rides").parts[:-1])
    assert markers == {5: "city_id=1/dt=2026-11-30", 8: f"city_id={NULL}/dt=2026-11-30"}
    assert set(_current(_raw_rows(lake))) == set(_source(pg_url))


@pytest.mark.parametrize(("partition_by", "message"), [
    ("price", "partition_by: column 'price' is decimal128(12, 2); partition by a date or timestamp"),
    ("[created_at, updated_at]", "partition_by: 'created_at' and 'updated_at' are both dates/timestamps"),
    ("[city_id, nope]", "partition_by: column 'nope' not found in public.rides"),
])
def test_an_unusable_partition_column_is_refused_before_anything_is_written(
        tmp_path: Path, pg_url: str, partition_by: str, message: str) -> None:
    _setup(pg_url)
    rep = _project(tmp_path, pg_url, partition_by)
    with pytest.raises(ReplicatorError) as caught:
        rep.sync("rides")
    assert message in str(caught.value)
    assert not (tmp_path / "lake" / "rides").exists() or not _files(tmp_path / "lake")
