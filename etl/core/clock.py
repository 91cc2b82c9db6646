"""Time as the whole product sees it: integer epoch milliseconds, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def to_epoch_ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware UTC")
    return (value - EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(value: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(value))
