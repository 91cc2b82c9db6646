"""Response models (documented in /docs and /openapi.json). Times are ISO-8601 UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Link(BaseModel):
    rel: str
    href: str


class Root(BaseModel):
    name: str
    version: str
    docs: str | None
    links: list[Link]


class Live(BaseModel):
    status: str = Field(examples=["ok"])


class RunBrief(BaseModel):
    id: str
    status: str
    finished_at: datetime | None
    age_seconds: float | None


class Freshness(BaseModel):
    symbol: str
    source: str
    interval: str
    as_of: datetime
    age_seconds: float
    stale: bool


class Health(BaseModel):
    status: str = Field(examples=["ok", "degraded"])
    version: str
    platform: str
    database: dict[str, Any] = Field(examples=[{"reachable": True, "latency_ms": 0.4}])
    schema_version: str | None
    schema_head: str | None
    last_run: RunBrief | None
    freshness: list[Freshness]
    gemini_breaker: str
    rate_limits: RateLimitStorage
    stream: StreamHealth | None = Field(
        description="the stream worker's state as it last reported it; null: none ever ran"
    )


class StreamHealth(BaseModel):
    state: str = Field(
        examples=["connected"],
        description="connected, disconnected (reconnecting), stopped, or unresponsive (no "
        "report for three report periods: the worker is gone or stuck)",
    )
    connected: bool
    since: datetime | None = Field(description="start of the current connection")
    last_message_age_seconds: float | None
    messages: int
    bad_messages: int
    reconnects: int
    last_error: str | None
    report_age_seconds: float | None


class RateLimitStorage(BaseModel):
    configured: str = Field(examples=["redis"], description="memory or redis")
    in_use: str = Field(
        examples=["redis"], description="memory while a configured Redis is unreachable"
    )
    degraded: bool = Field(description="limits are counted per process, not shared")


class VenueOut(BaseModel):
    """One venue's latest ticker and whether the consolidated price used it."""

    source: str
    price: float | None = Field(description="its mid when bid and ask are usable, else last")
    bid: float | None
    ask: float | None
    volume_24h: float | None = Field(description="24h volume in the base currency")
    as_of: datetime
    used: bool
    reason_if_not: str | None = Field(
        examples=["stale"], description="stale, no_price, outlier or not_freshest"
    )


class Latest(BaseModel):
    symbol: str
    price: float
    bid: float | None
    ask: float | None
    spread: float | None
    volume_24h: float | None
    volume_quote_24h: float | None
    as_of: datetime
    age_seconds: float
    stale: bool
    source: str = Field(
        examples=["consolidated"],
        description="`consolidated` for a weighted median, else the venue or series source",
    )
    interval: str | None
    method: str = Field(
        examples=["weighted_median"],
        description="weighted_median, single_source_fallback (one fresh venue), "
        "last_known (no fresh venue: the newest ticker or bar close) or source (`?source=`)",
    )
    sources_used: list[str]
    venues: list[VenueOut]


class LatestList(BaseModel):
    data: list[Latest]


class MetricOut(BaseModel):
    symbol: str
    source: str
    interval: str
    as_of: datetime
    last_price: float
    change_1h: float | None
    change_pct_1h: float | None
    change_24h: float | None
    change_pct_24h: float | None
    change_7d: float | None
    change_pct_7d: float | None
    change_30d: float | None
    change_pct_30d: float | None
    high_24h: float | None
    low_24h: float | None
    volume_24h: float | None
    volume_quote_24h: float | None
    volatility_7d: float | None
    volatility_30d: float | None
    sma_7: float | None
    sma_30: float | None
    ema_7: float | None
    ema_30: float | None
    vwap_24h: float | None
    vwap_30d: float | None
    max_drawdown_30d: float | None
    spread: float | None


class MetricList(BaseModel):
    data: list[MetricOut]


class Coverage(BaseModel):
    source: str
    interval: str
    first_open: datetime
    last_open: datetime
    bars: int


class SymbolOut(BaseModel):
    symbol: str
    base: str
    quote: str
    name: str
    coin_id: str
    aliases: list[str]
    sources: list[str]
    coverage: list[Coverage]


class SymbolList(BaseModel):
    data: list[SymbolOut]


class QualityOut(BaseModel):
    symbol: str
    source: str
    interval: str
    run_id: str
    computed_at: datetime
    score: float
    completeness: float
    consistency: float
    coverage: float
    freshness_seconds: float
    bar_count: int
    missing_bars: int
    zero_volume_bars: int
    gaps: list[dict[str, Any]]
    breakdown: dict[str, Any]


class QualityList(BaseModel):
    data: list[QualityOut]


class TickerOut(BaseModel):
    source: str
    observed_at: datetime
    bid: float | None
    ask: float | None
    last: float
    volume_base_24h: float | None
    volume_quote_24h: float | None


class SymbolDetail(BaseModel):
    asset: SymbolOut
    ticker: TickerOut | None
    venues: list[VenueOut] = Field(description="every venue's latest ticker, as /latest")
    metrics: list[MetricOut]
    quality: list[QualityOut]


class GeminiSymbolOut(BaseModel):
    symbol: str
    base: str
    quote: str
    perpetual: bool


class GeminiSymbols(BaseModel):
    data: list[GeminiSymbolOut]
    fetched_at: datetime
    stale: bool


class Bar(BaseModel):
    open_time: datetime
    close_time: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float | None
    volume_quote: float | None
    bars: int = Field(description="stored bars in this bar (1 unless resampled)")
    complete: bool = Field(description="the bar's close time has passed")


class CandlePage(BaseModel):
    symbol: str
    source: str
    interval: str
    resampled_from: str
    data: list[Bar]
    next_cursor: str | None


class RunOut(BaseModel):
    id: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    sources: dict[str, Any]
    error: str | None


class SourceTotals(BaseModel):
    status: str | None
    read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    error_count: int = Field(description="how many errors; their text is on /runs/{id}")


class RunSummary(BaseModel):
    """A run as listed: per source its status and counts, no per-file details."""

    id: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    sources: dict[str, SourceTotals]
    error: str | None = Field(description="masked, at most 2,000 characters")


class RunList(BaseModel):
    data: list[RunSummary]
