"""The API benchmark's anchor: a bare FastAPI app served exactly as `api.serve` serves ours.

    python -m bench.bare_app PORT WORKERS

One route, `GET /x` answering `{"ok": true}`: FastAPI's routing, validation and
serialisation with nothing of ours (no middleware, key, limit, cache or log), on the same
uvicorn options (`api.serve.SERVER_OPTIONS`: the HTTP protocol, no uvicorn access log) and
the same event loop choice for the number of workers.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from api.serve import SERVER_OPTIONS, event_loop
from api.settings import get_api_settings


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    return app


def main(argv: list[str]) -> int:
    port, workers = int(argv[0]), int(argv[1])
    loop = event_loop(get_api_settings(api_workers=workers, _env_file=None))
    uvicorn.run(
        "bench.bare_app:create_app",
        host="127.0.0.1",
        port=port,
        workers=workers,
        loop=loop,
        **SERVER_OPTIONS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
