"""Path and query parameter types shared by the routes (validated by FastAPI: a bad value
is a 422 problem)."""

from typing import Annotated

from fastapi import Path, Query

SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
SymbolPath = Annotated[
    str,
    Path(
        pattern=SYMBOL_PATTERN,
        max_length=32,
        description="any alias: bitcoin, BTC, btc-usd",
        examples=["bitcoin"],
    ),
]
SymbolsQuery = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9._-]{1,32}(,[A-Za-z0-9._-]{1,32}){0,49}$",
        description="comma-separated aliases (at most 50)",
        examples=["bitcoin,ETH"],
    ),
]
SourceQuery = Annotated[
    str | None,
    Query(
        pattern=r"^[a-z0-9_]{1,32}$",
        description="one source (a venue id such as `kraken`, or `csv`) instead of all",
        examples=["kraken"],
    ),
]
