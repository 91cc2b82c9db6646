"""The v2 adapter on every documented message shape, and on shapes it must refuse
(as a `BadMessage` with a reason, never an exception)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from etl.stream.gemini_v2 import (
    BadMessage,
    Bar,
    BookChange,
    BookSnapshot,
    CandleUpdate,
    ExchangeError,
    GeminiV2,
    Heartbeat,
    Level,
    Trade,
)
from tests.gemini_ws_double import candles, heartbeat, l2_snapshot, l2_update, trade, trade_body

ADAPTER = GeminiV2()


def test_subscribe_message_names_l2_and_candles_in_upper_case() -> None:
    message = json.loads(ADAPTER.subscribe_message(["btcusd", "ETHUSD"]))
    assert message == {
        "type": "subscribe",
        "subscriptions": [
            {"name": "l2", "symbols": ["BTCUSD", "ETHUSD"]},
            {"name": "candles_1m", "symbols": ["BTCUSD", "ETHUSD"]},
        ],
    }


def test_first_l2_message_is_the_whole_book_with_its_trades() -> None:
    body = trade_body("BTCUSD", 7, 1_700_000_000_000, "9004.21", "0.0911")
    events = ADAPTER.parse(l2_snapshot("BTCUSD", [("9000.5", "1")], [("9001", "2")], [body]))
    assert events == [
        BookSnapshot(
            "BTCUSD",
            (Level("bid", Decimal("9000.5"), Decimal(1)), Level("ask", Decimal(9001), Decimal(2))),
        ),
        Trade("BTCUSD", 7, 1_700_000_000_000, 9004.21, 0.0911, live=False),
    ]


def test_increments_trades_candles_and_heartbeats() -> None:
    assert ADAPTER.parse(l2_update("BTCUSD", ("sell", "9160.20", "0"))) == [
        BookChange("BTCUSD", (Level("ask", Decimal("9160.20"), Decimal(0)),))
    ]
    assert ADAPTER.parse(trade("ETHUSD", 3, 1_700_000_000_123, "3450.25")) == [
        Trade("ETHUSD", 3, 1_700_000_000_123, 3450.25, 0.5)
    ]
    rows = [[1_700_000_040_000 - 60_000, 1, 2, 0.5, 1.5, 3], [1_700_000_040_000, 1.5, 2, 1, 2, 1]]
    assert ADAPTER.parse(candles("BTCUSD", *rows)) == [
        CandleUpdate(
            "BTCUSD",
            "1m",
            (Bar(1_699_999_980_000, 1, 2, 0.5, 1.5, 3), Bar(1_700_000_040_000, 1.5, 2, 1, 2, 1)),
        )
    ]
    assert ADAPTER.parse(heartbeat()) == [Heartbeat()]


def test_a_refusal_is_an_exchange_error() -> None:
    refusal = json.dumps({"result": "error", "reason": "NoValidTradingPairs"})
    assert ADAPTER.parse(refusal) == [ExchangeError("NoValidTradingPairs")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type":"trade","symbol":"BTC', "malformed_json"),
        ("not json at all", "malformed_json"),
        ("[1, 2]", "bad_shape: not an object"),
        ('{"type":"auction_open","symbol":"BTCUSD"}', "bad_shape: unknown type"),
        (trade("BTCUSD", 1, 1_700_000_000_000, "-5"), "bad_shape: non_positive trade price"),
        (trade("BTCUSD", 1, 1_700_000_000_000, "0"), "bad_shape: non_positive trade price"),
        (trade("BTCUSD", 1, 1_700_000_000_000, "NaN"), "bad_shape: trade price is not finite"),
        (l2_update("BTCUSD", ("hold", "1", "1")), "bad_shape: l2 change is not"),
        (l2_update("BTCUSD", ("buy", "1", "-1")), "bad_shape: negative quantity"),
        (json.dumps({"type": "l2_updates", "symbol": "BTCUSD"}), "bad_shape: changes is not"),
        (candles("BTCUSD", [60_000, 1, 2, 0, 1, 1]), "bad_shape: non_positive price"),
        (candles("BTCUSD", [60_000, 1, 0.5, 0.9, 1, 1]), "bad_shape: inconsistent candle"),
        (candles("BTCUSD", [60_001, 1, 2, 1, 1, 1]), "bad_shape: candle time"),
        (candles("BTCUSD", [60_000, "1", 2, 1, 1, 1]), "bad_shape: candle row"),
        (json.dumps({"type": "trade", "symbol": None}), "bad_shape: trade without"),
    ],
)
def test_bad_shapes_become_bad_messages_with_a_reason(text: str, reason: str) -> None:
    [event] = ADAPTER.parse(text)
    assert isinstance(event, BadMessage)
    assert event.reason.startswith(reason), event.reason
    assert event.raw == text
