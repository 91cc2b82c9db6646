"""The anchor of the serving benchmarks: a bare FastAPI route, served by uvicorn with the
API's own server options (`api.serve.SERVER_OPTIONS`), so a ratio against it measures our
route, not the server.

    python -m bench.bare_app PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from api.serve import SERVER_OPTIONS


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    return app


if __name__ == "__main__":
    uvicorn.run(
        "bench.bare_app:create_app",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=1,
        loop="asyncio",  # what api.serve picks for one worker
        **SERVER_OPTIONS,
    )
