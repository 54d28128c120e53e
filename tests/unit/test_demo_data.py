from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from replicator import demo_data
from replicator.demo_data import create_demo_database, mutate_demo_database

TABLES = ["cities", "drivers", "riders", "rides", "payments"]
BASE = datetime(2024, 3, 10, 12, 34)  # pinned "now" so contents don't depend on the wall clock


@pytest.fixture(autouse=True)
def _pin_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_data, "_utc_now", lambda: BASE.replace(second=41, microsecond=5))


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, int]]]:
    """One default-sized database shared by the read-only tests (creation is the slow part)."""
    path = tmp_path_factory.mktemp("demo") / "oltp.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_data, "_utc_now", lambda: BASE.replace(second=41, microsecond=5))
        counts = create_demo_database(path)
    yield path, counts


def _connect(path: Path) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(path))  # sqlite3's own context manager doesn't close


def _max_updated(conn: sqlite3.Connection) -> dict[str, str]:
    return {t: conn.execute(f"SELECT MAX(updated_at) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608


def test_counts_match_tables(demo_db: tuple[Path, dict[str, int]]) -> None:
    path, counts = demo_db
    assert set(counts) == set(TABLES)
    with _connect(path) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == counts[table]  # noqa: S608
        completed = conn.execute("SELECT count(*) FROM rides WHERE status = 'completed'").fetchone()[0]
    assert counts["rides"] == 20000
    assert counts["payments"] == completed  # one payment per completed ride


def test_timestamps_are_fixed_width_and_not_after_base(demo_db: tuple[Path, dict[str, int]]) -> None:
    path, _ = demo_db
    with _connect(path) as conn:
        for table, latest in _max_updated(conn).items():
            assert len(latest) == 26 and latest <= "2024-03-10 12:34:00.000000", table
        odd = conn.execute("SELECT count(*) FROM rides WHERE length(created_at) != 26").fetchone()[0]
        days = conn.execute("SELECT count(DISTINCT substr(created_at, 1, 10)) FROM rides").fetchone()[0]
    assert odd == 0
    assert days >= 55  # partitioning by day yields many partitions


def test_refuses_to_overwrite_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "exists.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        create_demo_database(path, rides=10)
    assert path.read_bytes() == b"precious"


def test_same_seed_gives_identical_rides(tmp_path: Path) -> None:
    dumps = []
    for name in ("a.db", "b.db"):
        create_demo_database(tmp_path / name, seed=3, rides=3000)
        with _connect(tmp_path / name) as conn:
            dumps.append(conn.execute("SELECT * FROM rides ORDER BY id").fetchall())
    assert len(dumps[0]) == 3000
    assert dumps[0] == dumps[1]


def test_mutation_is_visible_to_an_incremental_sync(tmp_path: Path) -> None:
    path = tmp_path / "oltp.db"
    create_demo_database(path, rides=5000)
    with _connect(path) as conn:
        before = _max_updated(conn)
    result = mutate_demo_database(path)
    assert set(result) == {f"{t}_{k}" for t in TABLES for k in ("updated", "inserted")}
    assert result["rides_updated"] > 0 and result["rides_inserted"] == 300
    assert result["drivers_updated"] > 0 and result["payments_inserted"] > 0
    with _connect(path) as conn:
        for table in TABLES:
            changed = conn.execute(
                f"SELECT count(*) FROM {table} WHERE updated_at > ?", (before[table],)  # noqa: S608
            ).fetchone()[0]
            assert changed == result[f"{table}_updated"] + result[f"{table}_inserted"], table
        # The simulated changes stay behind the wall clock, so a change a user makes next is synced too.
        latest = max(_max_updated(conn).values())
        assert latest <= (demo_data._utc_now() + timedelta(seconds=1)).isoformat(sep=" "), latest
        orphans = conn.execute(
            "SELECT count(*) FROM rides r WHERE status = 'completed'"
            " AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.ride_id = r.id)"
        ).fetchone()[0]
    assert orphans == 0  # every newly completed ride got its payment


def test_notes_cover_null_empty_and_unicode(demo_db: tuple[Path, dict[str, int]]) -> None:
    path, _ = demo_db
    with _connect(path) as conn:
        notes = [r[0] for r in conn.execute("SELECT DISTINCT notes FROM rides")]
    assert None in notes
    assert "" in notes
    assert any(n and not n.isascii() for n in notes)


def test_prices_have_exactly_two_decimals(demo_db: tuple[Path, dict[str, int]]) -> None:
    path, _ = demo_db
    # Raw sqlite3: NUMERIC affinity stores the bound text '12.50' as REAL 12.5 (or
    # INTEGER for '12.00'), so check the value is a whole number of cents.
    with _connect(path) as conn:
        kinds = {r[0] for r in conn.execute("SELECT DISTINCT typeof(price) FROM rides")}
        prices = [r[0] for r in conn.execute("SELECT price FROM rides")]
    assert kinds <= {"real", "integer"}
    assert all(abs(p * 100 - round(p * 100)) < 1e-6 for p in prices)
    # Through SQLAlchemy reflection (what the replicator uses) they are exact 2-dp Decimals.
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        rides = sa.Table("rides", sa.MetaData(), autoload_with=engine)
        assert isinstance(rides.c.price.type, sa.Numeric)
        assert (rides.c.price.type.precision, rides.c.price.type.scale) == (12, 2)
        with engine.connect() as conn:
            values = conn.execute(sa.select(rides.c.price)).scalars().all()
    finally:
        engine.dispose()
    assert all(isinstance(v, Decimal) and v.as_tuple().exponent == -2 for v in values)
    assert len(values) == len(prices)
