"""The stream worker: Gemini's market data WebSocket into 1-minute bars and tickers, live
(`python -m etl.stream`). Beside `etl.sources` in the layers; only its `__main__` uses it."""
