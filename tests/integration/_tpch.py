"""TPC-H for test_tpch.py: the generator, the standard DDL, fast loaders, a change set and the queries.

The data come from `tpchgen-cli` (the `test` extra), an independent generator whose output equals the
reference dbgen's. Its `.tbl` files end every line with `|`, which both loaders expect.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

# The standard TPC-H DDL (dss.ddl) with the primary keys of dss.ri, in load order.
TABLES: dict[str, tuple[str, list[str]]] = {
    "region": ("r_regionkey integer NOT NULL, r_name char(25) NOT NULL, r_comment varchar(152)", ["r_regionkey"]),
    "nation": ("n_nationkey integer NOT NULL, n_name char(25) NOT NULL, n_regionkey integer NOT NULL, "
               "n_comment varchar(152)", ["n_nationkey"]),
    "part": ("p_partkey integer NOT NULL, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL, "
             "p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size integer NOT NULL, "
             "p_container char(10) NOT NULL, p_retailprice decimal(15,2) NOT NULL, "
             "p_comment varchar(23) NOT NULL", ["p_partkey"]),
    "supplier": ("s_suppkey integer NOT NULL, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL, "
                 "s_nationkey integer NOT NULL, s_phone char(15) NOT NULL, s_acctbal decimal(15,2) NOT NULL, "
                 "s_comment varchar(101) NOT NULL", ["s_suppkey"]),
    "partsupp": ("ps_partkey integer NOT NULL, ps_suppkey integer NOT NULL, ps_availqty integer NOT NULL, "
                 "ps_supplycost decimal(15,2) NOT NULL, ps_comment varchar(199) NOT NULL",
                 ["ps_partkey", "ps_suppkey"]),
    "customer": ("c_custkey integer NOT NULL, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL, "
                 "c_nationkey integer NOT NULL, c_phone char(15) NOT NULL, c_acctbal decimal(15,2) NOT NULL, "
                 "c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL", ["c_custkey"]),
    "orders": ("o_orderkey integer NOT NULL, o_custkey integer NOT NULL, o_orderstatus char(1) NOT NULL, "
               "o_totalprice decimal(15,2) NOT NULL, o_orderdate date NOT NULL, "
               "o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL, "
               "o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL", ["o_orderkey"]),
    "lineitem": ("l_orderkey integer NOT NULL, l_partkey integer NOT NULL, l_suppkey integer NOT NULL, "
                 "l_linenumber integer NOT NULL, l_quantity decimal(15,2) NOT NULL, "
                 "l_extendedprice decimal(15,2) NOT NULL, l_discount decimal(15,2) NOT NULL, "
                 "l_tax decimal(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL, "
                 "l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL, "
                 "l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, "
                 "l_comment varchar(44) NOT NULL", ["l_orderkey", "l_linenumber"]),
}

# Integer watermarks of the two growing tables (lineitem's ties: several lines per order).
WATERMARKS = {"orders": "o_orderkey", "lineitem": "l_orderkey"}

# char(n) columns: trailing blanks are not significant in SQL, so results compare without them.
CHAR_COLUMNS = frozenset({
    "r_name", "n_name", "p_mfgr", "p_brand", "p_container", "s_name", "s_phone", "c_phone", "c_mktsegment",
    "o_orderstatus", "o_orderpriority", "o_clerk", "l_returnflag", "l_linestatus", "l_shipinstruct",
    "l_shipmode",
})


def ddl(name: str) -> str:
    columns, key = TABLES[name]
    return f"CREATE TABLE {name} ({columns}, PRIMARY KEY ({', '.join(key)}))"


@contextmanager
def driver_cursor(url: str, **connect_args: Any) -> Iterator[Any]:
    """A cursor of the driver's own connection (COPY, LOAD DATA, no parameter markers); commits on success."""
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        raw = engine.raw_connection()
        try:
            yield raw.cursor()
            raw.commit()
        finally:
            raw.close()
    finally:
        engine.dispose()


def generate(folder: Path, scale: float) -> Path:
    """Run tpchgen-cli: one `<table>.tbl` per table in `folder`."""
    exe = shutil.which("tpchgen-cli") or shutil.which("tpchgen-cli", path=str(Path(sys.executable).parent))
    assert exe, "tpchgen-cli is missing: pip install -e '.[test]'"
    subprocess.run([exe, "--scale-factor", str(scale), "--output-dir", str(folder)],
                   check=True, capture_output=True, timeout=120)
    missing = [name for name in TABLES if not (folder / f"{name}.tbl").is_file()]
    assert not missing, f"tpchgen-cli wrote no file for {missing}"
    return folder


def load_postgres(url: str, data: Path) -> None:
    """CREATE the tables and COPY each file in (text format, `|`-separated; the trailing `|` dropped)."""
    with driver_cursor(url) as cur:
        for name in TABLES:
            cur.execute(ddl(name))
            text = (data / f"{name}.tbl").read_text()
            body = io.StringIO(text.replace("|\n", "\n"))
            cur.copy_expert(f"COPY {name} FROM STDIN WITH (FORMAT text, DELIMITER '|')", body)
        cur.execute("ANALYZE")


def load_mariadb(url: str, data: Path) -> None:
    """CREATE the tables and LOAD DATA LOCAL INFILE each file (lines end in `|` + newline)."""
    with driver_cursor(url, local_infile=True) as cur:
        for name in TABLES:
            cur.execute(ddl(name))
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE {name} CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '|' ESCAPED BY '' LINES TERMINATED BY '|\\n'",
                (str(data / f"{name}.tbl"),))
            cur.execute("SHOW WARNINGS")
            warnings = cur.fetchall()
            assert not warnings, f"LOAD DATA of {name}: {warnings[:5]}"


# --- the change set ----------------------------------------------------------------------------------

ORDER_KEY_OFFSET = 1_000_000  # above every generated o_orderkey (at most 6,000,000 x scale)
COPIED_ORDERS_BELOW = 3000    # orders 1..2999 (about 750 orders, 3,000 lines) are copied as new orders
ACCTBAL_RAISE = Decimal("1234.56")
DELETED_PARTS = 7


def change_source(url: str) -> None:
    """New orders with higher keys and their lines; some customers' c_acctbal updated; a few parts deleted.

    The new orders copy old ones under new keys (dates, customers, parts kept) with every line's price
    raised by 0.37, so they enter the queries' windows and no ranked result ties with its original. The
    deleted parts are ones sold in Q14's month, so its answer changes.
    """
    lineitem = [c.split()[0] for c in TABLES["lineitem"][0].split(", ")]
    orders = [c.split()[0] for c in TABLES["orders"][0].split(", ")]
    new_lines = ", ".join(
        f"l_orderkey + {ORDER_KEY_OFFSET}" if c == "l_orderkey" else
        "l_extendedprice + 0.37" if c == "l_extendedprice" else c for c in lineitem)
    new_orders = ", ".join(f"o_orderkey + {ORDER_KEY_OFFSET}" if c == "o_orderkey" else c for c in orders)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            parts = conn.execute(sa.text(
                "SELECT DISTINCT l_partkey FROM lineitem WHERE l_shipdate >= date '1995-09-01' "
                "AND l_shipdate < date '1995-10-01' ORDER BY l_partkey")).scalars().all()[:DELETED_PARTS]
            assert len(parts) == DELETED_PARTS
            conn.execute(sa.text(f"INSERT INTO orders ({', '.join(orders)}) SELECT {new_orders} FROM orders "
                                 f"WHERE o_orderkey < {COPIED_ORDERS_BELOW}"))
            conn.execute(sa.text(f"INSERT INTO lineitem ({', '.join(lineitem)}) SELECT {new_lines} "
                                 f"FROM lineitem WHERE l_orderkey < {COPIED_ORDERS_BELOW}"))
            conn.execute(sa.text("UPDATE customer SET c_acctbal = c_acctbal + :raise WHERE c_custkey % 10 = 3"),
                         {"raise": ACCTBAL_RAISE})
            conn.execute(sa.text("DELETE FROM part WHERE p_partkey IN :keys").bindparams(
                sa.bindparam("keys", expanding=True)), {"keys": list(parts)})
    finally:
        engine.dispose()


# --- the benchmark's queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A TPC-H query with its substitution parameters fixed to the specification's validation values.

    `quotients` are columns holding a quotient (avg, a ratio), to which each engine gives its own precision
    (MariaDB 4 decimals beyond the operands', PostgreSQL 16 or more digits, DuckDB a DOUBLE): they compare
    rounded to 6 decimals. Every other value compares exactly.
    """

    name: str
    sql: str
    quotients: tuple[str, ...] = ()


QUERIES = [
    Query("Q1", """
        select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty, sum(l_extendedprice) as sum_base_price,
               sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
               sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
               avg(l_quantity) as avg_qty, avg(l_extendedprice) as avg_price, avg(l_discount) as avg_disc,
               count(*) as count_order
        from lineitem
        where l_shipdate <= date '1998-12-01' - interval '90' day
        group by l_returnflag, l_linestatus
        order by l_returnflag, l_linestatus
    """, quotients=("avg_qty", "avg_price", "avg_disc")),
    Query("Q3", """
        select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate, o_shippriority
        from customer, orders, lineitem
        where c_mktsegment = 'BUILDING' and c_custkey = o_custkey and l_orderkey = o_orderkey
          and o_orderdate < date '1995-03-15' and l_shipdate > date '1995-03-15'
        group by l_orderkey, o_orderdate, o_shippriority
        order by revenue desc, o_orderdate
        limit 10
    """),
    Query("Q4", """
        select o_orderpriority, count(*) as order_count
        from orders
        where o_orderdate >= date '1993-07-01' and o_orderdate < date '1993-07-01' + interval '3' month
          and exists (select * from lineitem where l_orderkey = o_orderkey and l_commitdate < l_receiptdate)
        group by o_orderpriority
        order by o_orderpriority
    """),
    Query("Q5", """
        select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
        from customer, orders, lineitem, supplier, nation, region
        where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey
          and c_nationkey = s_nationkey and s_nationkey = n_nationkey and n_regionkey = r_regionkey
          and r_name = 'ASIA' and o_orderdate >= date '1994-01-01'
          and o_orderdate < date '1994-01-01' + interval '1' year
        group by n_name
        order by revenue desc
    """),
    Query("Q6", """
        select sum(l_extendedprice * l_discount) as revenue
        from lineitem
        where l_shipdate >= date '1994-01-01' and l_shipdate < date '1994-01-01' + interval '1' year
          and l_discount between 0.06 - 0.01 and 0.06 + 0.01 and l_quantity < 24
    """),
    Query("Q10", """
        select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue, c_acctbal, n_name,
               c_address, c_phone, c_comment
        from customer, orders, lineitem, nation
        where c_custkey = o_custkey and l_orderkey = o_orderkey and o_orderdate >= date '1993-10-01'
          and o_orderdate < date '1993-10-01' + interval '3' month and l_returnflag = 'R'
          and c_nationkey = n_nationkey
        group by c_custkey, c_name, c_acctbal, c_phone, n_name, c_address, c_comment
        order by revenue desc
        limit 20
    """),
    Query("Q12", """
        select l_shipmode,
               sum(case when o_orderpriority = '1-URGENT' or o_orderpriority = '2-HIGH' then 1 else 0 end)
                   as high_line_count,
               sum(case when o_orderpriority <> '1-URGENT' and o_orderpriority <> '2-HIGH' then 1 else 0 end)
                   as low_line_count
        from orders, lineitem
        where o_orderkey = l_orderkey and l_shipmode in ('MAIL', 'SHIP') and l_commitdate < l_receiptdate
          and l_shipdate < l_commitdate and l_receiptdate >= date '1994-01-01'
          and l_receiptdate < date '1994-01-01' + interval '1' year
        group by l_shipmode
        order by l_shipmode
    """),
    Query("Q14", """
        select 100.00 * sum(case when p_type like 'PROMO%' then l_extendedprice * (1 - l_discount) else 0 end)
               / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
        from lineitem, part
        where l_partkey = p_partkey and l_shipdate >= date '1995-09-01'
          and l_shipdate < date '1995-09-01' + interval '1' month
    """, quotients=("promo_revenue",)),
    Query("Q18", """
        select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity) as sum_qty
        from customer, orders, lineitem
        where o_orderkey in (select l_orderkey from lineitem group by l_orderkey having sum(l_quantity) > 300)
          and c_custkey = o_custkey and o_orderkey = l_orderkey
        group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice
        order by o_totalprice desc, o_orderdate
        limit 100
    """),
]

SIX_PLACES = Decimal("0.000001")


def normalized(columns: Sequence[str], rows: Sequence[Sequence[Any]], query: Query) -> list[tuple]:
    """Rows as comparable values, sorted: char(n) values without pad blanks, quotients at 6 decimals."""
    out = []
    for row in rows:
        values = []
        for column, value in zip(columns, row):
            if column in CHAR_COLUMNS and isinstance(value, str):
                value = value.rstrip(" ")
            elif column in query.quotients and value is not None:
                value = Decimal(value).quantize(SIX_PLACES, rounding=ROUND_HALF_UP)
            values.append(value)
        out.append(tuple(values))
    return sorted(out)
