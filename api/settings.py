"""Settings of the HTTP API: the data-side settings plus what serving needs.

Keys (`API_KEY`, `API_KEYS`) live in `etl.core.settings.Settings` so logs can mask them
anywhere; this adds hosts, CORS, docs, limits and caching. Read once, in the lifespan.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from etl.core.settings import Settings, split_commas

PLACEHOLDER_KEYS = frozenset({"change-me", "changeme", "placeholder", "example", "secret", "dev"})
MIN_PRODUCTION_KEY_LENGTH = 24
MIN_CURSOR_SECRET_LENGTH = 32
MAX_KEY_BYTES = 256  # longer X-API-Key headers are refused before hashing


class ApiSettings(Settings):
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"]
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    docs_enabled: bool | None = None  # default: on, except in production
    metrics_public: bool = False
    dashboard_enabled: bool = True  # /dashboard/: the page and its files (its data is keyed)
    rate_limit_default: str = "120/minute"
    rate_limit_candles: str = "60/minute"
    rate_limit_probes: str = "600/minute"
    rate_limit_export: str = "10/minute"  # candle exports: each may stream many pages
    rate_limit_auth_failures: str = "20/minute"  # wrong keys per client address
    rate_limit_storage_uri: str = "memory://"
    # A Redis call blocks the event loop: never longer than this. Past it (or on any storage
    # error) limits fall back to per-process memory until Redis answers again.
    rate_limit_storage_timeout_seconds: float = Field(default=0.25, gt=0)
    rate_limit_key_prefix: str = "crypto-api"
    # fixed-window: O(1) per request in memory and Redis. moving-window is exact, but its
    # in-memory storage keeps one entry per hit (slow under high limits).
    rate_limit_strategy: Literal["fixed-window", "moving-window"] = "fixed-window"
    # Where `python -m api.serve` listens, and how many worker processes it starts.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    # auto: asyncio with one worker, uvloop with several (measured; see api/serve.py).
    api_event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    stale_after_intervals: float = Field(default=3.0, gt=0)
    cache_ttl_seconds: float = Field(default=5.0, ge=0)
    cache_stale_seconds: float = Field(default=30.0, ge=0)
    cache_max_mb: int = Field(default=64, ge=1)  # bytes of rendered answers kept, per process
    cache_max_age_seconds: int = Field(default=60, ge=0)
    # Candle exports: at most EXPORT_MAX_BARS bars per request (400 beyond), read and sent
    # EXPORT_CHUNK_BARS at a time.
    export_max_bars: int = Field(default=500_000, ge=1)
    export_chunk_bars: int = Field(default=5000, ge=1, le=50_000)
    # Signs pagination cursors. Required in production: the fallback is derived from the
    # key digests, so anyone who can read a `sha256:` entry could forge cursors with it.
    cursor_secret: SecretStr | None = None
    # Server-Sent Events (/api/crypto/stream). Updates come through Redis pub/sub when
    # STREAM_REDIS_URL (default: RATE_LIMIT_STORAGE_URI when it is redis://) is set, else
    # from the database, polled at most every STREAM_POLL_SECONDS.
    stream_max_per_key: int = Field(default=5, ge=1)
    stream_max_clients: int = Field(default=1000, ge=1)
    stream_poll_seconds: float = Field(default=0.25, gt=0)
    stream_token_seconds: int = Field(default=60, ge=1)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_replay: int = Field(default=1000, ge=0)  # events kept for Last-Event-ID
    stream_client_queue: int = Field(default=1000, ge=1)  # past it: a slow client, dropped

    @field_validator("allowed_hosts", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_commas(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError as exc:
                    raise ValueError(f"TRUSTED_PROXIES: {entry!r} is not a network") from exc
        return value

    @model_validator(mode="after")
    def _refuse_keys_no_client_may_send(self) -> ApiSettings:
        for key in self.plain_keys():
            if len(key.encode()) > MAX_KEY_BYTES:
                raise ValueError(f"an API key is at most {MAX_KEY_BYTES} bytes (UTF-8)")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> ApiSettings:
        if self.environment != "production":
            return self
        for key in self.plain_keys():
            if key.lower() in PLACEHOLDER_KEYS or len(key) < MIN_PRODUCTION_KEY_LENGTH:
                raise ValueError(
                    "refusing a placeholder or short API key in production "
                    f"(use at least {MIN_PRODUCTION_KEY_LENGTH} random characters)"
                )
        secret = self.cursor_secret.get_secret_value() if self.cursor_secret else ""
        if len(secret) < MIN_CURSOR_SECRET_LENGTH or secret.lower() in PLACEHOLDER_KEYS:
            raise ValueError(
                "CURSOR_SECRET is required in production: at least "
                f"{MIN_CURSOR_SECRET_LENGTH} random characters (it signs pagination cursors)"
            )
        return self

    @property
    def docs(self) -> bool:
        return (
            self.docs_enabled
            if self.docs_enabled is not None
            else (self.environment != "production")
        )

    def stream_redis(self) -> str | None:
        """Where stream updates come from: a Redis URL, or None to follow the database."""
        if self.stream_redis_url is not None:
            return self.stream_redis_url or None  # STREAM_REDIS_URL= : the database
        uri = self.rate_limit_storage_uri
        return uri if uri.startswith(("redis://", "rediss://")) else None

    def plain_keys(self) -> list[str]:
        keys = [self.api_key.get_secret_value()] if self.api_key else []
        keys += [k.get_secret_value() for k in self.api_keys]
        return [k for k in keys if k and not k.startswith("sha256:")]

    def key_digests(self) -> list[bytes]:
        """SHA-256 digests of every accepted key (`sha256:<hex>` entries taken as given)."""
        digests = [hashlib.sha256(k.encode()).digest() for k in self.plain_keys()]
        for key in self.api_keys:
            text = key.get_secret_value()
            if text.startswith("sha256:"):
                digests.append(bytes.fromhex(text.removeprefix("sha256:")))
        return digests

    def cursor_key(self) -> bytes:
        if self.cursor_secret and self.cursor_secret.get_secret_value():
            return self.cursor_secret.get_secret_value().encode()
        # development and tests only (production requires CURSOR_SECRET)
        return hashlib.sha256(b"cursor:" + b"".join(sorted(self.key_digests()))).digest()


def get_api_settings(**overrides: object) -> ApiSettings:
    return ApiSettings(**overrides)  # type: ignore[arg-type]
