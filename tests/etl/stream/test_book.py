"""The L2 book: snapshot, increments, removal, best prices, and a crossed book refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from etl.stream.book import Book, CrossedBook
from etl.stream.gemini_v2 import Level


def lv(side: str, price: str, quantity: str) -> Level:
    return Level(side, Decimal(price), Decimal(quantity))


def test_increments_before_the_snapshot_are_ignored() -> None:
    book = Book()
    assert book.apply((lv("bid", "10", "1"),)) is False
    assert book.best_bid is None


def test_snapshot_then_increments_keep_best_bid_and_ask() -> None:
    book = Book()
    book.snapshot((lv("bid", "10", "1"), lv("bid", "9", "2"), lv("ask", "11", "1")))
    assert (book.best_bid, book.best_ask) == (Decimal(10), Decimal(11))
    book.apply((lv("bid", "10", "0"), lv("ask", "10.5", "3")))  # 0 removes the level
    assert (book.best_bid, book.best_ask) == (Decimal(9), Decimal("10.5"))
    book.apply((lv("ask", "10.5", "3"),))  # a repeated increment changes nothing
    assert book.asks == {Decimal("10.5"): Decimal(3), Decimal(11): Decimal(1)}


def test_a_new_snapshot_replaces_the_book() -> None:
    book = Book()
    book.snapshot((lv("bid", "10", "1"), lv("ask", "11", "1")))
    book.snapshot((lv("bid", "20", "1"), lv("ask", "21", "1")))
    assert (book.bids, book.asks) == ({Decimal(20): Decimal(1)}, {Decimal(21): Decimal(1)})


def test_a_change_that_crosses_the_book_is_refused_and_undone() -> None:
    book = Book()
    book.snapshot((lv("bid", "10", "1"), lv("ask", "11", "1")))
    with pytest.raises(CrossedBook, match="bid 11.5 >= ask 11"):
        book.apply((lv("bid", "10", "5"), lv("bid", "11.5", "1")))
    assert book.bids == {Decimal(10): Decimal(1)}
    assert book.asks == {Decimal(11): Decimal(1)}
