"""Storage: candle stores (local Parquet files, QuestDB) and the cache (in-process, Redis).

Only the ports are imported here; adapters live in their modules
(`storage.local`, `storage.questdb_store`, `storage.cache`) so importing the package pulls
in neither pyarrow, the QuestDB client, psycopg nor redis.
"""

from algotrendy.storage.base import (
    Cache,
    CandleStore,
    LatestPrice,
    StoreError,
    StoreUnavailableError,
    get_latest_price,
    put_latest_price,
)

__all__ = [
    "Cache",
    "CandleStore",
    "LatestPrice",
    "StoreError",
    "StoreUnavailableError",
    "get_latest_price",
    "put_latest_price",
]
