"""Vectorised parsing of the value spellings real exports use.

Each parser returns the parsed values plus, per row, an error text for a value that is
present but unreadable (`None` where the value parsed or is simply missing). Missing and
malformed are kept apart: the validator reports them with different reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

import pandas as pd

MISSING_TOKENS = frozenset({"", "-", "null", "nan", "none", "n/a", "na", "#n/a"})
_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9}
# Epoch values at or above this are milliseconds (1e11 seconds is the year 5138).
EPOCH_MS_THRESHOLD = 1e11
# ... and at or above this, microseconds (1e14 ms is the year 5138 too).
EPOCH_US_THRESHOLD = 1e14
EPOCH = pd.Timestamp(0, tz=UTC)


def _blank(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    return values.isna() | text.isin(MISSING_TOKENS).fillna(False).astype(bool)


def parse_numbers(
    values: pd.Series, *, field: str, suffixes: bool = False
) -> tuple[pd.Series, pd.Series]:
    """Floats from numbers written plainly, with thousands separators (`"9,926,540,000"`),
    or with K/M/B suffixes (`"1.38M"`, when `suffixes`). Returns (values, errors)."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64"), pd.Series(None, index=values.index, dtype=object)
    text = values.astype("string").str.strip().str.replace(",", "", regex=False)
    scale = pd.Series(1.0, index=values.index)
    if suffixes:
        last = text.str[-1:].str.upper()
        has_suffix = last.isin(_SUFFIX.keys()).fillna(False).astype(bool)
        scale = scale.where(~has_suffix, last.map(_SUFFIX).astype("float64"))
        text = text.where(~has_suffix, text.str[:-1])
    numbers = pd.to_numeric(text, errors="coerce").astype("float64") * scale
    missing = _blank(values)
    numbers = numbers.where(~missing)
    bad = numbers.isna() & ~missing
    errors = pd.Series(None, index=values.index, dtype=object)
    if bad.any():
        errors[bad] = f"non-numeric {field}: " + values[bad].astype(str).str.slice(0, 40)
    return numbers, errors


def epoch_to_ms(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Unix times in seconds or milliseconds (mixed within one file, as CryptoDataDownload
    writes them; floats such as `1325412060.0` too) to epoch milliseconds."""
    numbers, errors = parse_numbers(values, field="timestamp")
    ms = numbers.where(numbers >= EPOCH_MS_THRESHOLD, numbers * 1000.0)
    return ms.round(), errors


def epoch_ms_or_us_to_ms(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Unix milliseconds or microseconds, decided per value by magnitude (Binance's archive
    switched to microseconds on 2025-01-01; one file may hold both), to epoch ms."""
    numbers, errors = parse_numbers(values, field="timestamp")
    ms = numbers.where(numbers < EPOCH_US_THRESHOLD, numbers / 1000.0)
    return ms.round(), errors


def datetimes_to_ms(
    values: pd.Series, formats: Sequence[str], *, iso_fallback: bool = False
) -> tuple[pd.Series, pd.Series]:
    """Date/time text parsed with the first matching format, as UTC, to epoch ms.

    Text without an offset is UTC; `iso_fallback` also accepts any ISO-8601 (with offset).
    """
    text = values.astype("string").str.strip()
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    for fmt in formats:
        todo = parsed.isna() & text.notna()
        if not todo.any():
            break
        parsed[todo] = pd.to_datetime(text[todo], format=fmt, errors="coerce", utc=True)
    if iso_fallback:
        todo = parsed.isna() & text.notna()
        if todo.any():
            parsed[todo] = pd.to_datetime(text[todo], format="ISO8601", errors="coerce", utc=True)
    ms = (parsed - EPOCH) // pd.Timedelta(milliseconds=1)
    missing = _blank(values)
    bad = parsed.isna() & ~missing
    errors = pd.Series(None, index=values.index, dtype=object)
    if bad.any():
        errors[bad] = "unparseable timestamp: " + values[bad].astype(str).str.slice(0, 40)
    return ms.astype("float64"), errors


def timestamps_to_ms(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Epoch numbers or ISO-8601 text, decided per value (the canonical layout allows both)."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return epoch_to_ms(values)
    ms, errors = datetimes_to_ms(values, (), iso_fallback=True)
    is_number = numeric.notna()
    if is_number.any():
        epoch_ms, _ = epoch_to_ms(numeric[is_number])
        ms[is_number] = epoch_ms
        errors[is_number] = None
    return ms, errors


def first_error(*columns: pd.Series) -> pd.Series:
    """Row-wise first non-null error text across columns."""
    result = pd.Series(None, index=columns[0].index, dtype=object)
    for column in columns:
        result = result.where(result.notna(), column)
    return result
