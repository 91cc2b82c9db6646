"""The database schema (SQLAlchemy 2.0 typed models). Alembic migrations own the DDL.

Time representation: every instant is stored as integer epoch **milliseconds UTC**
(`EpochMs`), on SQLite and PostgreSQL alike. One representation for every writer (the ORM,
the raw `executemany` path and `COPY`) means equal instants are always equal keys; the ORM
hands back timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from typing_extensions import override

from etl.core.clock import from_epoch_ms, to_epoch_ms

JsonType = JSON().with_variant(JSONB(), "postgresql")
RUN_STATUSES = ("running", "success", "partial", "failed")


class EpochMs(TypeDecorator[datetime]):
    """Aware UTC datetime in Python, BIGINT epoch milliseconds in the database."""

    impl = BigInteger
    cache_ok = True

    @override
    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return to_epoch_ms(value)
        return int(value)

    @override
    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else from_epoch_ms(value)


class Base(DeclarativeBase):
    pass


class Asset(Base):
    """A canonical trading pair, e.g. BTCUSD; aliases resolve to it (see `etl.core.assets`)."""

    __tablename__ = "asset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32), unique=True)
    base: Mapped[str] = mapped_column(String(16))
    quote: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    coin_id: Mapped[str] = mapped_column(String(64), index=True)


class SourceBatch(Base):
    """One ingested unit: a CSV file (by content hash) or one live fetch."""

    __tablename__ = "source_batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), ForeignKey("etl_run.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "csv" or a live source name
    ref: Mapped[str] = mapped_column(String(1024))  # file path or endpoint
    content_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(32))
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(EpochMs)


class Candle(Base):
    """One OHLCV bar; `open_time` is the bar's start (source conventions converted).

    No foreign keys on this bulk table, on purpose: the loader writes the asset and batch
    rows in the same transaction as the candles, and per-row FK triggers doubled the
    PostgreSQL load time (measured: 5.0 s vs 2.5 s for 200k rows). The test suite checks
    that no candle points at a missing asset or batch.
    """

    __tablename__ = "candle"
    # The API follows written bars by write time (etl.read.updates): migration 0004.
    __table_args__ = (Index("ix_candle_ingested_at", "ingested_at"),)

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time: Mapped[datetime] = mapped_column(EpochMs, primary_key=True)
    close_time: Mapped[datetime] = mapped_column(EpochMs)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)  # base currency
    volume_quote: Mapped[float | None] = mapped_column(Float)  # quote currency
    batch_id: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(EpochMs)


class StoredSeriesStats(Base):
    """What the loader keeps about one stored series (asset, source, interval), updated in
    the same transaction as its bars and in proportion to them (`etl.load.series_stats`):
    the quality report and the coverage counts read it instead of scanning `candle`.
    `gap_count` and `missing_bars` sum the series' rows in `series_gap`."""

    __tablename__ = "series_stats"

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    bars: Mapped[int] = mapped_column(BigInteger)
    first_open: Mapped[datetime] = mapped_column(EpochMs)
    last_open: Mapped[datetime] = mapped_column(EpochMs)
    zero_volume_bars: Mapped[int] = mapped_column(BigInteger)  # coalesce(volume, quote) = 0
    gap_count: Mapped[int] = mapped_column(BigInteger)
    missing_bars: Mapped[int] = mapped_column(BigInteger)


class SeriesGap(Base):
    """Two consecutive stored bars of a series more than one interval apart: the open times
    either side of the missing ones (kept by `etl.load.series_stats`)."""

    __tablename__ = "series_gap"

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    before_open: Mapped[datetime] = mapped_column(EpochMs, primary_key=True)
    after_open: Mapped[datetime] = mapped_column(EpochMs)


class CandleRollup(Base):
    """Coarser bars of one stored series (`base`), kept by the loaders in the transaction
    that writes the stored bars (`etl.load.rollups`): `interval`'s bucket that opens at
    `open_time` holds `bars` stored bars; open of the first, close of the last, high/low
    the extremes, volumes the sums. A table of its own, so that no reader of `candle`
    takes a rollup for a stored series."""

    __tablename__ = "candle_rollup"

    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    base: Mapped[str] = mapped_column(String(8), primary_key=True)  # the stored interval
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    open_time: Mapped[datetime] = mapped_column(EpochMs, primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float | None] = mapped_column(Float)
    volume_quote: Mapped[float | None] = mapped_column(Float)
    bars: Mapped[int] = mapped_column(Integer)


class PricePoint(Base):
    """One price with no bar around it: CoinGecko's export is one snapshot per day, with no
    open, high or low. Kept out of `candle` so that no reader, metric or API route can take
    it for a bar, and nothing is invented to make it look like one. `day` (the snapshot's
    UTC date, 00:00) keys the daily series; `observed_at` is when the price was taken."""

    __tablename__ = "price_point"

    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[datetime] = mapped_column(EpochMs, primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(EpochMs)
    price: Mapped[float] = mapped_column(Float)  # in the asset's quote currency
    market_cap: Mapped[float | None] = mapped_column(Float)  # quote currency
    volume_quote_24h: Mapped[float | None] = mapped_column(Float)  # all venues, quote
    batch_id: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(EpochMs)


class Ticker(Base):
    """A live snapshot (filled by the live sources). One per asset, source and time: a
    retried load step (Prefect retries the Gemini task with the run's clock) adds nothing."""

    __tablename__ = "ticker"
    __table_args__ = (
        Index("ux_ticker_asset_time", "asset_id", "source", "observed_at", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id"))
    source: Mapped[str] = mapped_column(String(32))
    observed_at: Mapped[datetime] = mapped_column(EpochMs)
    bid: Mapped[float | None] = mapped_column(Float)
    ask: Mapped[float | None] = mapped_column(Float)
    last: Mapped[float] = mapped_column(Float)
    volume_base_24h: Mapped[float | None] = mapped_column(Float)
    volume_quote_24h: Mapped[float | None] = mapped_column(Float)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    run_id: Mapped[str | None] = mapped_column(String(36))


class Metric(Base):
    """Metrics of one series (asset, source, interval) as of its newest bar."""

    __tablename__ = "metric"

    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    interval: Mapped[str] = mapped_column(String(8), primary_key=True)
    as_of: Mapped[datetime] = mapped_column(EpochMs, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36))
    computed_at: Mapped[datetime] = mapped_column(EpochMs)
    last_price: Mapped[float] = mapped_column(Float)
    change_1h: Mapped[float | None] = mapped_column(Float)
    change_pct_1h: Mapped[float | None] = mapped_column(Float)
    change_24h: Mapped[float | None] = mapped_column(Float)
    change_pct_24h: Mapped[float | None] = mapped_column(Float)
    change_7d: Mapped[float | None] = mapped_column(Float)
    change_pct_7d: Mapped[float | None] = mapped_column(Float)
    change_30d: Mapped[float | None] = mapped_column(Float)
    change_pct_30d: Mapped[float | None] = mapped_column(Float)
    high_24h: Mapped[float | None] = mapped_column(Float)
    low_24h: Mapped[float | None] = mapped_column(Float)
    volume_24h: Mapped[float | None] = mapped_column(Float)
    volume_quote_24h: Mapped[float | None] = mapped_column(Float)
    volatility_7d: Mapped[float | None] = mapped_column(Float)
    volatility_30d: Mapped[float | None] = mapped_column(Float)
    sma_7: Mapped[float | None] = mapped_column(Float)
    sma_30: Mapped[float | None] = mapped_column(Float)
    ema_7: Mapped[float | None] = mapped_column(Float)
    ema_30: Mapped[float | None] = mapped_column(Float)
    vwap_24h: Mapped[float | None] = mapped_column(Float)
    vwap_30d: Mapped[float | None] = mapped_column(Float)
    max_drawdown_30d: Mapped[float | None] = mapped_column(Float)
    spread: Mapped[float | None] = mapped_column(Float)


class EtlRun(Base):
    """The run ledger; `id` is the correlation id carried by every log line of the run."""

    __tablename__ = "etl_run"
    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'success', 'partial', 'failed')", name="ck_etl_run_status"
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(EpochMs, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(EpochMs)
    status: Mapped[str] = mapped_column(String(16))
    sources: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class QualityReport(Base):
    """Data quality of one series in one run; `breakdown` explains the 0-100 score."""

    __tablename__ = "quality_report"
    __table_args__ = (Index("ix_quality_series", "asset_id", "source", "interval", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), ForeignKey("etl_run.id"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id"))
    source: Mapped[str] = mapped_column(String(32))
    interval: Mapped[str] = mapped_column(String(8))
    computed_at: Mapped[datetime] = mapped_column(EpochMs)
    score: Mapped[float] = mapped_column(Float)
    completeness: Mapped[float] = mapped_column(Float)
    consistency: Mapped[float] = mapped_column(Float)
    coverage: Mapped[float] = mapped_column(Float)
    freshness_seconds: Mapped[float] = mapped_column(Float)
    bar_count: Mapped[int] = mapped_column(Integer)
    missing_bars: Mapped[int] = mapped_column(Integer)
    zero_volume_bars: Mapped[int] = mapped_column(Integer)
    first_open: Mapped[datetime] = mapped_column(EpochMs)
    last_open: Mapped[datetime] = mapped_column(EpochMs)
    gaps: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class RejectedRow(Base):
    """The quarantine: a bad row is never loaded and never silently dropped."""

    __tablename__ = "rejected_row"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36), ForeignKey("etl_run.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    file: Mapped[str] = mapped_column(String(1024))
    line: Mapped[int | None] = mapped_column(Integer)
    raw: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(EpochMs)


class StreamSession(Base):
    """One WebSocket connection of the stream worker: how long it lasted, what it carried,
    and why it ended (`idle`, `closed`, `error`, `stopped`)."""

    __tablename__ = "stream_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(36))
    url: Mapped[str] = mapped_column(String(1024))
    started_at: Mapped[datetime] = mapped_column(EpochMs, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(EpochMs)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    bad_messages: Mapped[int] = mapped_column(Integer, default=0)
    reconnect_reason: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
