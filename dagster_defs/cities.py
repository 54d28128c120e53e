"""The per-city path of the demo, downstream of the lake: features per city, then a model per city.

`city/ride_features` (partitioned by city id) is computed with DuckDB from the lake's `rides` as of one
pinned batch (run config `batch`, default: the latest committed one), read with `read_table(as_of=...)`.
`city/price_model` fits price ~ 1 + distance_km + hour by least squares (numpy) and records the lake
batch it was trained on with its coefficients and metrics: `read_table("rides", as_of=<lake_batch>)`
reproduces the training set exactly, and the same batch gives the same model.
"""

# No `from __future__ import annotations`: Dagster reads these type hints at definition time.
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa

from .resources import ReplicatorResource

# The demo's 12 cities (replicator.demo_data creates them with ids 1..12); static so that no lake is read at import.
DEMO_CITY_IDS = [str(i) for i in range(1, 13)]
city_partitions = dg.StaticPartitionsDefinition(DEMO_CITY_IDS)

FEATURES_SQL = """
SELECT id, distance_km, CAST(extract(hour FROM created_at) AS INTEGER) AS hour, CAST(price AS DOUBLE) AS price
FROM rides WHERE city_id = ? AND status = 'completed' ORDER BY id
"""


class FeaturesConfig(dg.Config):  # type: ignore[misc]
    batch: int | None = None  # the lake batch of `rides` to read (default: the latest committed)


def city_features(rides: pa.Table, city_id: int) -> pa.Table:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("rides", rides)
        relation = con.sql(FEATURES_SQL, params=[city_id])
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2 / 1.x
        result: pa.Table = fetch()
        return result
    finally:
        con.close()


def fit_price_model(features: pa.Table) -> dict[str, Any]:
    """Least squares price ~ 1 + distance_km + hour; coefficients and in-sample metrics."""
    price = features["price"].to_numpy()
    design = np.column_stack([np.ones(len(price)), features["distance_km"].to_numpy(), features["hour"].to_numpy()])
    coef, *_ = np.linalg.lstsq(design, price, rcond=None)
    residual = price - design @ coef
    total = float(((price - price.mean()) ** 2).sum()) if len(price) else 0.0
    return {"intercept": float(coef[0]), "per_km": float(coef[1]), "per_hour": float(coef[2]),
            "rmse": float(np.sqrt((residual ** 2).mean())) if len(price) else 0.0,
            "r2": 1 - float((residual ** 2).sum()) / total if total else 0.0, "rows": len(price)}


@dg.asset(key=["city", "ride_features"], deps=[dg.AssetKey(["lake", "rides"])], partitions_def=city_partitions,
          group_name="city_models", kinds={"duckdb", "parquet"},
          description="Completed rides of one city (distance, hour, price) from the lake as of one pinned batch")
def ride_features(context: dg.AssetExecutionContext, config: FeaturesConfig,
                  replicator: ReplicatorResource) -> dg.Output[dict[str, Any]]:
    with replicator.open() as rep:
        seqs = rep.table_lake("rides").seqs()
        batch = config.batch if config.batch is not None else (seqs[-1] if seqs else None)
        if batch is None or batch not in seqs:
            raise dg.Failure(description=f"rides has no committed lake batch {batch}; committed: {seqs}")
        rides = rep.read_table("rides", as_of=batch)
    features = city_features(rides, int(context.partition_key))
    return dg.Output({"lake_batch": batch, "features": features},
                     metadata={"lake_batch": batch, "dagster/row_count": features.num_rows,
                               "reproduce": f'read_table("rides", as_of={batch}) then FEATURES_SQL with city_id='
                                            f'{context.partition_key}'})


@dg.asset(key=["city", "price_model"], ins={"city_features": dg.AssetIn(key=["city", "ride_features"])},
          partitions_def=city_partitions, group_name="city_models", kinds={"numpy"},
          description="Per-city price model (least squares on distance and hour), with the lake batch it was trained on")
def price_model(context: dg.AssetExecutionContext, city_features: dict[str, Any]) -> dg.Output[dict[str, Any]]:
    model = fit_price_model(city_features["features"])
    if model["rows"] < 3:
        raise dg.Failure(description=f"city {context.partition_key}: {model['rows']} completed rides, too few to fit")
    return dg.Output({**model, "lake_batch": city_features["lake_batch"]},
                     metadata={"lake_batch": city_features["lake_batch"], "city_id": context.partition_key, **model})


def city_assets() -> list[dg.AssetsDefinition]:
    return [ride_features, price_model]
