"""The `etl` error vocabulary. Adapters (the API, the flows) map these in one place."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class EtlError(Exception):
    """Base class of every error the pipeline raises on purpose."""

    code = "etl_error"


class UnknownAssetError(EtlError, ValueError):
    code = "unknown_asset"

    def __init__(self, text: str) -> None:
        super().__init__(f"unknown asset {text!r}")
        self.text = text


PREVIEW_CHARS = 200


def content_preview(cells: Sequence[str], limit: int = PREVIEW_CHARS) -> str:
    """At most `limit` printable characters of a file's first line: an error must not echo
    a file's content (a `csv_paths` pointed at `/proc/self/environ` would leak secrets)."""
    text = "".join(ch for ch in repr(list(cells)) if ch.isprintable())
    return text[:limit] + ("..." if len(text) > limit else "")


class UnrecognisedFormatError(EtlError):
    """A CSV whose header matches none of the supported layouts (one line: it is a run
    detail; the header shown is bounded by `content_preview`)."""

    code = "unrecognised_format"

    def __init__(self, path: Path, found: Sequence[str], expected: Sequence[str]) -> None:
        listing = " | ".join(expected)
        super().__init__(
            f"{path}: unrecognised CSV format; found header {content_preview(found)}; "
            f"expected one of: {listing}"
        )
        self.path = path


class FileExtractError(EtlError):
    """A file that was recognised but cannot be read as a whole (no symbol, no interval)."""

    code = "file_extract_error"

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class AssetTextError(EtlError, ValueError):
    """A symbol or name from a file that must not reach the API (too long, unprintable,
    a spreadsheet formula, or another known coin's name); `reason` is one line."""

    code = "bad_asset_text"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LoadError(EtlError):
    """A database failure while loading a batch: the batch was rolled back, the run fails."""

    code = "load_error"


class GeminiError(EtlError):
    """A Gemini call that did not produce usable data; `kind` names the failure:
    timeout, connection, rate_limited, server_error, circuit_open, bad_request, malformed."""

    code = "gemini_error"

    def __init__(self, kind: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"gemini {kind}: {message}")
        self.kind = kind
        self.status = status


class GeminiTransientError(GeminiError):
    """Worth retrying: connection errors, timeouts, 429 and 5xx."""


class GeminiRequestError(GeminiError):
    """Our request was refused (400 InvalidSymbol, 404): never retried, never trips the
    circuit breaker."""


class GeminiBusyError(GeminiError):
    """Our own pacer had no free slot in time: nothing was sent, so this is neither retried
    nor counted against the host by the breaker."""


class VenueError(EtlError):
    """A call to an exchange through ccxt that did not produce usable data; `kind` names the
    failure: rate_limited, unavailable, timeout, malformed, bad_request, circuit_open,
    unsupported, other."""

    code = "venue_error"

    def __init__(self, venue: str, kind: str, message: str) -> None:
        super().__init__(f"{venue} {kind}: {message}")
        self.venue = venue
        self.kind = kind


class VenueTransientError(VenueError):
    """Worth retrying: rate limited, unavailable (5xx, maintenance, refused), timed out."""


class VenueRequestError(VenueError):
    """Our request was refused (an unknown symbol, a bad parameter): never retried, never
    trips the venue's breaker."""
