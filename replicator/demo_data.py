"""Deterministic ride-hailing OLTP demo database (SQLite) for exercising the replicator.

Storage: DATETIME is text 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC, always 6 fractional
digits, so text order == time order), DATE is 'YYYY-MM-DD', BOOLEAN is 0/1. NUMERIC
values are bound as exact text ('12.50'), but SQLite's NUMERIC *affinity* converts
numeric-looking text on write, so they are stored as REAL 12.5 (or INTEGER 12 for
'12.00'). All values have <= 12 significant digits, so SQLAlchemy's Numeric(p, 2)
reads back the exact Decimal('12.50').
"""
from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# (name, country_code, timezone, launched_on); city ids are 1-based positions.
_CITIES: list[tuple[str, str, str, str]] = [
    ("Lisbon", "PT", "Europe/Lisbon", "2016-03-01"), ("Porto", "PT", "Europe/Lisbon", "2017-06-15"),
    ("Berlin", "DE", "Europe/Berlin", "2015-09-10"), ("München", "DE", "Europe/Berlin", "2018-04-02"),
    ("Zürich", "CH", "Europe/Zurich", "2019-01-21"), ("São Paulo", "BR", "America/Sao_Paulo", "2016-11-05"),
    ("Kraków", "PL", "Europe/Warsaw", "2020-02-17"), ("Paris", "FR", "Europe/Paris", "2015-05-30"),
    ("Madrid", "ES", "Europe/Madrid", "2017-10-09"), ("Reykjavík", "IS", "Atlantic/Reykjavik", "2021-07-01"),
    ("Ciudad de México", "MX", "America/Mexico_City", "2018-08-13"),
    ("İstanbul", "TR", "Europe/Istanbul", "2022-03-28"),
]
_CURRENCY = {"CH": "CHF", "BR": "BRL", "PL": "PLN", "IS": "ISK", "MX": "MXN", "TR": "TRY"}  # else EUR
# Rough price level per currency, so amounts look plausible per city.
_PRICE_FACTOR = {"EUR": 1.0, "CHF": 1.4, "BRL": 4.5, "PLN": 4.0, "ISK": 150.0, "MXN": 18.0, "TRY": 30.0}
_FIRST = ["Ana", "João", "Lukas", "Zoë", "Mateus", "Łukasz", "Chloé", "Sofía",
          "Emre", "Guðrún", "Felix", "Inês", "Marta", "Ömer", "Camille", "Diego"]
_LAST = ["Silva", "Müller", "Kowalski", "Dubois", "García", "Yılmaz", "Sigurðsson", "Santos",
         "Schmidt", "Nowak", "Martín", "Fernandes", "Weber", "Lefèvre", "Oliveira", "Hernández"]
_NOTES = ["Bagagem extra 🧳", "Bitte nicht hupen", "Kindersitz benötigt", "Llamar al llegar 📞",
          "Pet friendly 🐶", "Porte d'entrée côté cour", "Wait at gate B",
          json.dumps({"accessibility": "wheelchair", "lang": "pt-BR"}, ensure_ascii=False)]
_TABLES = ["cities", "drivers", "riders", "rides", "payments"]
_DAY = 86400

_SCHEMA = [
    "CREATE TABLE cities (id INTEGER PRIMARY KEY, name VARCHAR(80) NOT NULL, country_code VARCHAR(2)"
    " NOT NULL, timezone TEXT NOT NULL, launched_on DATE NOT NULL, updated_at DATETIME NOT NULL)",
    "CREATE TABLE drivers (id INTEGER PRIMARY KEY, city_id INTEGER NOT NULL, full_name TEXT NOT NULL,"
    " rating NUMERIC(3,2), is_active BOOLEAN NOT NULL, created_at DATETIME NOT NULL,"
    " updated_at DATETIME NOT NULL)",
    "CREATE TABLE riders (id INTEGER PRIMARY KEY, city_id INTEGER NOT NULL, email TEXT NOT NULL,"
    " signup_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)",
    "CREATE TABLE rides (id INTEGER PRIMARY KEY, city_id INTEGER NOT NULL, driver_id INTEGER NOT NULL,"
    " rider_id INTEGER NOT NULL, status VARCHAR(16) NOT NULL, price NUMERIC(12,2) NOT NULL,"
    " distance_km REAL NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, notes TEXT)",
    "CREATE TABLE payments (id INTEGER PRIMARY KEY, ride_id INTEGER NOT NULL, amount NUMERIC(12,2)"
    " NOT NULL, currency VARCHAR(3) NOT NULL, method VARCHAR(16) NOT NULL, paid_at DATETIME,"
    " updated_at DATETIME NOT NULL)",
] + [f"CREATE INDEX ix_{t}_updated_at ON {t} (updated_at)" for t in _TABLES]
_INSERT = {"cities": "INSERT INTO cities VALUES (?, ?, ?, ?, ?, ?)",
           "drivers": "INSERT INTO drivers VALUES (?, ?, ?, ?, ?, ?, ?)",
           "riders": "INSERT INTO riders VALUES (?, ?, ?, ?, ?)",
           "rides": "INSERT INTO rides VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           "payments": "INSERT INTO payments (ride_id, amount, currency, method, paid_at, updated_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)"}

Row = tuple[Any, ...]


def _utc_now() -> datetime:
    """Current naive-UTC time; a separate function so tests can pin it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _ts(dt: datetime) -> str:
    """Fixed-width DATETIME text, as SQLAlchemy's SQLite dialect parses it."""
    return dt.isoformat(sep=" ", timespec="microseconds")


def _money(cents: int) -> str:
    """Exact two-decimal text for a non-negative amount of cents (no float rounding)."""
    return f"{cents // 100}.{cents % 100:02d}"


def _before(rng: random.Random, end: datetime, max_seconds: float) -> datetime:
    """A uniformly random instant in (end - max_seconds, end]."""
    return end - timedelta(microseconds=rng.randrange(max(1, int(max_seconds * 1_000_000))))


def _email(rng: random.Random, pid: int) -> str:
    return f"{rng.choice(_FIRST).lower()}.{rng.choice(_LAST).lower()}{pid}@example.com"


def _ride(rng: random.Random, rid: int, city: int, currency: str, drivers: dict[int, list[int]],
          riders: dict[int, list[int]], status: str, created: datetime, updated: str) -> tuple[Row, int]:
    """One rides row plus its price in cents (the payment needs it)."""
    distance = round(rng.uniform(0.8, 30.0), 3)
    cents = round((250 + distance * 110 + rng.randint(0, 300)) * _PRICE_FACTOR.get(currency, 1.0))
    r = rng.random()
    note = None if r < 0.8 else "" if r < 0.87 else rng.choice(_NOTES)  # mostly NULL, some ''
    return (rid, city, rng.choice(drivers[city]), rng.choice(riders[city]), status, _money(cents),
            distance, _ts(created), updated, note), cents


def _payment(rng: random.Random, ride_id: int, cents: int, currency: str, at: str) -> Row:
    """Payment for a completed ride; 'invoice' payments start unpaid (paid_at NULL)."""
    method = rng.choices(["card", "wallet", "cash", "invoice"], weights=[60, 20, 15, 5])[0]
    tip = rng.choice([0, 0, 0, 50, 100]) if method == "card" else 0
    return (ride_id, _money(cents + tip), currency, method, None if method == "invoice" else at, at)


def create_demo_database(path: Path, *, seed: int = 7, rides: int = 20000) -> dict[str, int]:
    """Create a fresh SQLite ride-hailing OLTP database at `path` (overwriting nothing: raise FileExistsError if it exists). Returns row counts per table.

    Contents depend only on `seed`, `rides` and the creation minute: every timestamp is
    <= base (UTC now rounded down to the minute) and ride created_at values span the
    60 days before base. 12 cities, 1,500 drivers, 5,000 riders, one payment per
    completed ride. Missing parent directories are created; on failure the file is removed.
    """
    path = Path(path)
    if path.exists():  # fail fast; the atomic check is the open("x") below
        raise FileExistsError(path)
    rng = random.Random(seed)
    base = _utc_now().replace(second=0, microsecond=0)
    n_city = len(_CITIES)
    data: dict[str, list[Row]] = {t: [] for t in _TABLES}
    for i, (name, cc, tz, launched) in enumerate(_CITIES, start=1):
        data["cities"].append((i, name, cc, tz, launched, _ts(_before(rng, base, 90 * _DAY))))

    by_city: dict[str, dict[int, list[int]]] = {"drivers": {}, "riders": {}}
    for table, n, max_age in (("drivers", 1500, 3 * 365 * _DAY), ("riders", 5000, 2 * 365 * _DAY)):
        for i in range(1, n + 1):
            city = i if i <= n_city else rng.randint(1, n_city)  # every city gets people
            by_city[table].setdefault(city, []).append(i)
            created = _before(rng, base, max_age)
            touched = _ts(_before(rng, base, (base - created).total_seconds()))
            if table == "drivers":
                rating = None if rng.random() < 0.05 else _money(rng.randint(350, 500))
                name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
                row: Row = (i, city, name, rating, int(rng.random() < 0.85), _ts(created), touched)
            else:
                row = (i, city, _email(rng, i), _ts(created), touched)
            data[table].append(row)

    for rid in range(1, rides + 1):
        city, r = rng.randint(1, n_city), rng.random()
        # Status ignores age on purpose: mutate_demo_database needs open rides to close.
        status = ("completed" if r < 0.72 else "cancelled" if r < 0.84
                  else "accepted" if r < 0.92 else "requested")
        created = _before(rng, base, 60 * _DAY)
        updated = created if status == "requested" else min(
            base, created + timedelta(seconds=rng.randint(60, 3600)))
        at, currency = _ts(updated), _CURRENCY.get(_CITIES[city - 1][1], "EUR")
        ride, cents = _ride(rng, rid, city, currency, by_city["drivers"], by_city["riders"],
                            status, created, at)
        data["rides"].append(ride)
        if status == "completed":
            data["payments"].append(_payment(rng, rid, cents, currency, at))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.open("x").close()  # atomic "must not exist"; SQLite treats an empty file as a new db
    conn = sqlite3.connect(path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
    try:
        conn.execute("BEGIN")
        for ddl in _SCHEMA:
            conn.execute(ddl)
        for table in _TABLES:
            conn.executemany(_INSERT[table], data[table])
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        path.unlink(missing_ok=True)  # never leave a half-built "fresh" database behind
        raise
    conn.close()
    return {t: len(rows) for t, rows in data.items()}


def _ticks(rng: random.Random, start: datetime) -> Iterator[str]:
    """Strictly increasing timestamps after `start`, 1-400 µs apart (well under a second in total).

    Milliseconds apart, a run's thousand changes reached minutes past the wall clock: a row a user
    then changed with the real time before that would sit behind the stored watermark and never sync.
    """
    while True:
        start += timedelta(microseconds=rng.randint(1, 400))
        yield _ts(start)


def mutate_demo_database(path: Path, *, seed: int = 8) -> dict[str, int]:
    """Simulate a burst of production traffic: update some existing rows (bumping updated_at) and insert new ones. Returns {"<table>_updated": n, "<table>_inserted": n, ...}.

    Every key exists for all five tables. Each touched row gets an updated_at strictly
    greater than MAX(updated_at) over *all* tables before the call, and no row is both
    inserted and updated. Changes: 20 new riders; ~1% of drivers get a new rating; ~2% of
    rides go requested/accepted -> completed (plus a new payment) or cancelled; 300 new
    rides (plus payments for completed ones); ~10% of unpaid invoices get paid.
    Deterministic given `seed` and the database contents; one transaction.
    Raises FileNotFoundError if `path` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)  # sqlite3.connect would silently create an empty db
    rng = random.Random(seed)
    counts = {f"{t}_{k}": 0 for t in _TABLES for k in ("updated", "inserted")}
    conn = sqlite3.connect(path, isolation_level=None)

    def q(sql: str, *params: Any) -> list[Any]:
        return conn.execute(sql, params).fetchall()

    try:
        conn.execute("BEGIN IMMEDIATE")  # hold the write lock from reading the maxima on
        # Table names below come from the _TABLES constant, never from input.
        start = max(q(f"SELECT MAX(updated_at) FROM {t}")[0][0] for t in _TABLES)  # noqa: S608
        tick = _ticks(rng, datetime.fromisoformat(start))
        currency = {cid: _CURRENCY.get(cc, "EUR")
                    for cid, cc in q("SELECT id, country_code FROM cities ORDER BY id")}

        first_id = q("SELECT COALESCE(MAX(id), 0) + 1 FROM riders")[0][0]
        new_riders = [(i, rng.choice(list(currency)), _email(rng, i), at, at)
                      for i in range(first_id, first_id + 20) for at in [next(tick)]]
        conn.executemany(_INSERT["riders"], new_riders)
        counts["riders_inserted"] = len(new_riders)

        driver_ids = [r[0] for r in q("SELECT id FROM drivers ORDER BY id")]
        picked = sorted(rng.sample(driver_ids, max(1, round(len(driver_ids) * 0.01))))
        conn.executemany("UPDATE drivers SET rating = ?, updated_at = ? WHERE id = ?",
                         [(_money(rng.randint(350, 500)), next(tick), d) for d in picked])
        counts["drivers_updated"] = len(picked)

        n_rides = q("SELECT COUNT(*) FROM rides")[0][0]
        open_rides = q("SELECT id, city_id, price FROM rides"
                       " WHERE status IN ('requested', 'accepted') ORDER BY id")
        chosen = sorted(rng.sample(open_rides, min(len(open_rides), max(1, round(n_rides * 0.02)))))
        ride_updates: list[Row] = []
        payments: list[Row] = []
        for rid, city, price in chosen:
            at, status = next(tick), "completed" if rng.random() < 0.85 else "cancelled"
            ride_updates.append((status, at, rid))
            if status == "completed":  # price is REAL (NUMERIC affinity); round() gives exact cents
                payments.append(_payment(rng, rid, round(float(price) * 100), currency[city], at))
        conn.executemany("UPDATE rides SET status = ?, updated_at = ? WHERE id = ?", ride_updates)
        counts["rides_updated"] = len(ride_updates)

        people: dict[str, dict[int, list[int]]] = {"drivers": {}, "riders": {}}
        for table, index in people.items():
            for pid, city in q(f"SELECT id, city_id FROM {table} ORDER BY id"):  # noqa: S608
                index.setdefault(city, []).append(pid)
        cities = [c for c in currency if c in people["drivers"] and c in people["riders"]]
        first_id = q("SELECT COALESCE(MAX(id), 0) + 1 FROM rides")[0][0]
        new_rides: list[Row] = []
        for rid in range(first_id, first_id + 300):
            at, city = next(tick), rng.choice(cities)
            status = rng.choices(["requested", "accepted", "completed", "cancelled"], [40, 25, 30, 5])[0]
            updated = datetime.fromisoformat(at)
            created = updated if status == "requested" else _before(rng, updated, 40 * 60)
            ride, cents = _ride(rng, rid, city, currency[city], people["drivers"], people["riders"],
                                status, created, at)
            new_rides.append(ride)
            if status == "completed":
                payments.append(_payment(rng, rid, cents, currency[city], at))
        conn.executemany(_INSERT["rides"], new_rides)
        conn.executemany(_INSERT["payments"], payments)
        counts["rides_inserted"], counts["payments_inserted"] = len(new_rides), len(payments)

        # Only invoices older than this call, so no payment is both inserted and updated.
        unpaid = q("SELECT id FROM payments WHERE paid_at IS NULL AND updated_at <= ? ORDER BY id", start)
        settle = [(at, at, pid) for (pid,) in unpaid if rng.random() < 0.1 for at in [next(tick)]]
        conn.executemany("UPDATE payments SET paid_at = ?, updated_at = ? WHERE id = ?", settle)
        counts["payments_updated"] = len(settle)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return counts
