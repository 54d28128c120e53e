"""Iceberg catalogs by configuration (`lake.iceberg.catalog`): AWS Glue, spoken to over HTTP (moto's server,
the same endpoint as the S3 lake), a REST catalog that cannot be reached, and secrets kept out of the YAML.

Oracles: the source's rows, Glue's own API (boto3), and the tables read back through pyiceberg's Glue catalog.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from replicator import Replicator
from replicator.cli import main
from replicator.iceberg import file_io_properties

from ..conftest import execute, query, write_project


def _rides(pg_url: str) -> None:
    execute(pg_url,
            "CREATE TABLE rides (id bigint PRIMARY KEY, city_id int, price numeric(12,2), updated_at timestamptz NOT NULL)",
            "INSERT INTO rides SELECT g, g % 3, g * 1.5, now() - interval '2 hours' FROM generate_series(1, 120) g")


def _project(tmp_path: Path, pg_url: str, lake: str, iceberg: str) -> Path:
    path = write_project(tmp_path, sources={"app": pg_url}, lake=lake, warehouse=f"duckdb:///{tmp_path / 'wh.duckdb'}",
                         tables={"rides": "source: app\ntable: public.rides\nprimary_key: [id]\nwatermark: updated_at\n"
                                          "partition_by: [city_id]\n"})
    path.write_text(path.read_text().replace(f"  url: '{lake}'\n", f"  url: '{lake}'\n  iceberg:\n{iceberg}"))
    return path


@pytest.mark.integration
def test_glue_catalog_over_http(tmp_path: Path, pg_url: str, s3_lake: str) -> None:
    import boto3
    from pyiceberg.catalog import load_catalog

    _rides(pg_url)
    namespace = f"lake_{uuid.uuid4().hex[:8]}"
    rep = Replicator.from_path(_project(tmp_path, pg_url, s3_lake, f"    catalog: glue\n    namespace: {namespace}\n"))
    assert rep.sync("rides").extract.catalog_behind is None
    execute(pg_url, "UPDATE rides SET price = 0, updated_at = now() - interval '1 hour' WHERE id <= 30",
            "DELETE FROM rides WHERE id = 120")
    assert rep.sync("rides", full_refresh=True).extract.published.published == [2]  # type: ignore[union-attr]

    glue = boto3.client("glue", region_name="us-east-1")
    for database in (namespace, f"{namespace}_current"):
        table = glue.get_table(DatabaseName=database, Name="rides")["Table"]
        assert table["Parameters"]["table_type"].upper() == "ICEBERG"
        assert table["Parameters"]["metadata_location"].startswith(f"{s3_lake}/rides/")
    catalog = load_catalog("replicator", type="glue", **{"glue.region": "us-east-1"}, **file_io_properties())
    current = catalog.load_table(f"{namespace}_current.rides").scan().to_arrow()
    expected = {r[0]: r[1] for r in query(pg_url, "SELECT id, price FROM rides")}
    assert dict(zip(current.column("id").to_pylist(), current.column("price").to_pylist(), strict=True)) == expected
    assert len(expected) == 119
    batches = [s.summary["replicator.batch_id"] for s in catalog.load_table(f"{namespace}.rides").snapshots()]
    assert batches[-1] == "2" and "1" in batches


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_rest_catalog_is_named_and_the_sync_stays_green(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _rides(pg_url)
    url = f"http://127.0.0.1:{_closed_port()}/api/catalog"
    project = _project(tmp_path, pg_url, str(tmp_path / "lake"), f"    catalog: rest\n    catalog_uri: '{url}'\n")
    assert main(["--project", str(project), "validate"]) == 1
    err = capsys.readouterr().err
    assert f"{project}: lake.iceberg.catalog_uri: iceberg: cannot open the Iceberg catalog 'replicator'" in err
    assert not (tmp_path / "lake").exists()  # validate wrote nothing
    assert main(["--project", str(project), "sync", "rides"]) == 0  # the lake commit stands
    assert "the Iceberg catalog is behind the lake" in capsys.readouterr().err


@pytest.mark.parametrize(("iceberg", "message"), [
    ("    catalog: rest\n", "a REST catalog needs its URL"),
    ("    catalog: glue\n    catalog_uri: 'https://glue.example'\n", "AWS Glue takes none"),
    ("    catalog: rest\n    catalog_uri: 'https://cat.example'\n    catalog_properties: {token: s3cr3t-value}\n",
     "PYICEBERG_CATALOG__<CATALOG_NAME>__<KEY>"),
    ("    namespace: lake\n    current_namespace: lake\n", "current_namespace must differ from namespace"),
])
def test_a_catalog_setting_that_cannot_work_is_one_error(tmp_path: Path, pg_url: str, iceberg: str, message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path, pg_url, str(tmp_path / "lake"), iceberg)
    assert main(["--project", str(project), "validate"]) == 2
    err = capsys.readouterr().err
    assert message in err and "lake.iceberg" in err and str(project) in err
    assert "s3cr3t-value" not in err  # a secret put in the YAML is not repeated in the error
    assert not (tmp_path / "lake").exists()
