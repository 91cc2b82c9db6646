"""Settings for the data side, read from the environment and `.env`.

Nothing is read at import time: call `get_settings()` from an entry point. The variable
names of the original README keep working (`DATABASE_URL`, `COIN_IDS`, `KAGGLE_DATA_PATH`,
`POSTGRES_*`, ...).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

DEFAULT_SQLITE_URL = "sqlite:///data/crypto.db"
DEFAULT_RAW_DIR = Path("data/raw")
# Our interval names -> Gemini's candle time frames (the live API rejects 1h/6h/1d).
GEMINI_TIME_FRAMES = {
    "1m": "1m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1h": "1hr",
    "6h": "6hr",
    "1d": "1day",
}


# Bar intervals the venue sources may ask for (ccxt's names are ours).
VENUE_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "6h", "1d")
_VENUE_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
_QUOTE = re.compile(r"^[A-Z0-9]{2,10}$")


def normalise_database_url(url: str) -> str:
    """Map the URL spellings users paste to the driver we ship (psycopg2 on Postgres)."""
    url = url.strip()
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def split_commas(value: object) -> object:
    """`a, b,c` from the environment -> ["a", "b", "c"]; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def split_pairs(value: object) -> object:
    """`kraken=https://a, bitstamp=https://b` from the environment -> a dict; dicts pass."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        name, sep, url = part.partition("=")
        if not sep or not name.strip() or not url.strip():
            raise ValueError(f"expected venue=url, got {part.strip()!r}")
        pairs[name.strip().lower()] = url.strip()
    return pairs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""
    postgres_host: str | None = None
    postgres_port: int = 5432
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_db: str = "crypto"
    db_pool_size: int = Field(default=10, ge=1, le=200)

    kaggle_data_path: Path = DEFAULT_RAW_DIR
    coin_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["bitcoin", "ethereum", "solana", "cardano"]
    )
    csv_chunk_rows: int = Field(default=100_000, ge=1_000)
    # A longer line is quarantined unread (`malformed_line`), never parsed into memory.
    csv_max_line_bytes: int = Field(default=1 << 20, ge=4096)
    # A `.zip` holding more files, or a member inflating past this, fails that zip alone.
    csv_zip_max_members: int = Field(default=10_000, ge=1)
    csv_zip_max_member_bytes: int = Field(default=8 << 30, ge=1)
    # Where the Prefect flow's `csv_paths` may point (default: below KAGGLE_DATA_PATH).
    csv_allowed_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    future_tolerance_seconds: int = Field(default=300, ge=0)

    gemini_base_url: str = "https://api.gemini.com"
    gemini_api_key: SecretStr | None = None  # public endpoints need none; never logged
    gemini_connect_timeout: float = Field(default=3.05, gt=0)
    gemini_read_timeout: float = Field(default=10.0, gt=0)
    gemini_retries: int = Field(default=3, ge=1, le=10)  # attempts per request
    gemini_backoff_seconds: float = Field(default=0.5, ge=0)  # first retry wait, doubled
    gemini_backoff_max_seconds: float = Field(default=8.0, ge=0)
    gemini_requests_per_minute: int = Field(default=60, ge=1, le=120)
    gemini_burst: int = Field(default=3, ge=1, le=10)
    gemini_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)  # larger: malformed
    gemini_call_deadline_seconds: float = Field(default=60.0, gt=0)  # per call, retries included
    gemini_breaker_failures: int = Field(default=5, ge=1)
    gemini_breaker_reset_seconds: float = Field(default=60.0, gt=0)
    gemini_symbols_ttl_seconds: float = Field(default=6 * 3600, ge=0)
    gemini_ticker_ttl_seconds: float = Field(default=5.0, ge=0)
    gemini_candle_intervals: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["1h", "1d"]
    )

    # The venues polled each run (`etl.sources.ccxt_venues` through ccxt; `gemini` is the
    # Gemini source above, never fetched twice) and the quotes a coin is paired against:
    # USDT and USDC are their own quotes, never read as USD.
    exchanges: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["gemini", "kraken", "coinbase", "bitstamp"]
    )
    quotes: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["USD"])
    # venue -> base URL replacing ccxt's own (a proxy; the tests' local doubles)
    exchange_urls: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    exchange_timeout_seconds: float = Field(default=10.0, gt=0)  # per HTTP request
    exchange_retries: int = Field(default=3, ge=1, le=10)  # attempts per call
    exchange_backoff_seconds: float = Field(default=0.5, ge=0)  # first retry wait, doubled
    exchange_breaker_failures: int = Field(default=5, ge=1)
    exchange_breaker_reset_seconds: float = Field(default=60.0, gt=0)
    exchange_candle_intervals: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["1h", "1d"]
    )
    exchange_candle_limit: int = Field(default=100, ge=2, le=720)  # bars per first window

    # The consolidated price (etl.transform.consolidate): tickers older than this are
    # stale, quotes further than k median absolute deviations from the median are outliers,
    # and fewer venues than the minimum fall back to the freshest single venue.
    consolidate_max_age_seconds: float = Field(default=120.0, gt=0)
    consolidate_mad_k: float = Field(default=5.0, gt=0)
    consolidate_min_sources: int = Field(default=2, ge=1)

    # The stream worker (`python -m etl.stream`): Gemini's v2 market data WebSocket.
    gemini_ws_url: str = "wss://api.gemini.com/v2/marketdata"
    stream_idle_seconds: float = Field(default=30.0, gt=0)  # silence longer: reconnect
    stream_max_backoff_seconds: float = Field(default=60.0, gt=0)
    stream_batch_seconds: float = Field(default=1.0, gt=0)  # at most one write per period
    stream_batch_updates: int = Field(default=500, ge=1)  # ... or per this many updates
    # Gemini's public WebSocket request limit: a connection costs two (connect, subscribe).
    stream_requests_per_minute: int = Field(default=12, ge=2)
    # How often the worker writes its state into its run row (for /health, /metrics).
    stream_report_seconds: float = Field(default=5.0, gt=0)
    # The worker also polls the ccxt venues' tickers this often (0: never), so that the
    # consolidated price has fresh quotes between batch runs (CONSOLIDATE_MAX_AGE_SECONDS).
    stream_venue_poll_seconds: float = Field(default=30.0, ge=0)
    # Redis carrying live updates from the stream worker to every API process: the worker
    # publishes there when set; the API also falls back to RATE_LIMIT_STORAGE_URI.
    stream_redis_url: str | None = None
    stream_redis_channel: str = "crypto:updates"  # etl.load.updates.CHANNEL

    # The HTTP API's keys (the API issue); listed here so logs can mask them everywhere.
    api_key: SecretStr | None = None
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # Scheduling (scheduler/): a cron expression, or an interval that replaces it.
    etl_schedule_cron: str = "*/15 * * * *"
    etl_schedule_interval_seconds: int | None = Field(default=None, ge=60)

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator(
        "coin_ids",
        "gemini_candle_intervals",
        "api_keys",
        "csv_allowed_roots",
        "exchanges",
        "quotes",
        "exchange_candle_intervals",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("exchange_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        return split_pairs(value)

    @field_validator("exchanges")
    @classmethod
    def _venue_ids(cls, value: list[str]) -> list[str]:
        venues = [v.lower() for v in value]
        bad = [v for v in venues if not _VENUE_ID.match(v)]
        if bad:
            raise ValueError(f"not exchange ids (ccxt's, e.g. kraken): {bad}")
        return list(dict.fromkeys(venues))

    @field_validator("quotes")
    @classmethod
    def _quote_codes(cls, value: list[str]) -> list[str]:
        quotes = [q.upper() for q in value]
        bad = [q for q in quotes if not _QUOTE.match(q)]
        if bad or not quotes:
            raise ValueError(f"quotes are currency codes such as USD, USDT: {bad or 'none'}")
        return list(dict.fromkeys(quotes))

    @field_validator("exchange_candle_intervals")
    @classmethod
    def _known_venue_intervals(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in VENUE_INTERVALS]
        if unknown:
            raise ValueError(f"no {unknown} venue candles; use {list(VENUE_INTERVALS)}")
        return value

    @field_validator("gemini_candle_intervals")
    @classmethod
    def _known_gemini_intervals(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in GEMINI_TIME_FRAMES]
        if unknown:
            raise ValueError(f"Gemini has no {unknown} candles; use {sorted(GEMINI_TIME_FRAMES)}")
        return value

    @model_validator(mode="after")
    def _venue_urls(self) -> Settings:
        for venue, url in self.exchange_urls.items():
            if venue == "gemini":
                raise ValueError("EXCHANGE_URLS: Gemini's URL is GEMINI_BASE_URL")
            if venue not in self.exchanges:
                raise ValueError(f"EXCHANGE_URLS names {venue!r}, which EXCHANGES does not list")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"EXCHANGE_URLS: {venue} URL is not http(s)://host...")
        return self

    @model_validator(mode="after")
    def _resolve_database_url(self) -> Settings:
        if not self.database_url:
            if self.postgres_host:
                self.database_url = URL.create(
                    "postgresql+psycopg2",
                    username=self.postgres_user,
                    password=self.postgres_password or None,
                    host=self.postgres_host,
                    port=self.postgres_port,
                    database=self.postgres_db,
                ).render_as_string(hide_password=False)
            else:
                self.database_url = DEFAULT_SQLITE_URL
        self.database_url = normalise_database_url(self.database_url)
        return self


def csv_roots(settings: Settings) -> list[Path]:
    """The folders (or files) CSV paths from outside (a flow parameter) must lie below,
    resolved so a symlink or `..` cannot step out."""
    roots = settings.csv_allowed_roots or [settings.kaggle_data_path]
    return [p.expanduser().resolve() for p in roots]


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, in plain text, for log masking (longest first)."""
    values = [settings.postgres_password, make_url(settings.database_url).password or ""]
    # a proxy URL may carry credentials (https://user:secret@proxy/...)
    values += [urlsplit(url).password or "" for url in settings.exchange_urls.values()]
    for secret in (settings.gemini_api_key, settings.api_key, *settings.api_keys):
        if secret is not None:
            values.append(secret.get_secret_value())
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def ccxt_venues(settings: Settings) -> list[str]:
    """The venues fetched through ccxt: `EXCHANGES` but Gemini, which has its own client."""
    return [venue for venue in settings.exchanges if venue != "gemini"]


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (CLI options, tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
