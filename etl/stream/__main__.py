"""`python -m etl.stream`: run the stream worker until Ctrl-C or SIGTERM (both stop it
cleanly: pending writes flushed, the session and run closed)."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import redis

from etl.core.log import configure_logging
from etl.core.settings import get_settings
from etl.db.engine import create_db_engine, migrate
from etl.stream.publish import RedisUpdates
from etl.stream.worker import StreamWorker


async def _serve() -> None:
    settings = get_settings()
    configure_logging(settings)
    engine = create_db_engine(settings)
    await asyncio.to_thread(migrate, engine)
    worker = StreamWorker(settings, engine)
    publisher = None
    if settings.stream_redis_url:  # publish on receipt, for every API process
        client = redis.Redis.from_url(settings.stream_redis_url, socket_timeout=0.25)
        publisher = RedisUpdates(worker, client, settings.stream_redis_channel)
        worker.on_update = publisher
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # the worker flushes and closes its session and run
        if publisher is not None:
            publisher.close()
        worker.client.close()
        engine.dispose()


def main() -> int:
    asyncio.run(_serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
