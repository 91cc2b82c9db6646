"""`python -m api.serve`: serve the API with uvicorn (what `make run` ends with).

On first run without any key configured (`API_KEY`/`API_KEYS` in the environment or
`.env`), a random key is generated into `.env`; no default key ever ships. The key itself
is not printed: the hint shows how to read it from `.env`.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import uvicorn

from api.settings import get_api_settings

ENV_FILE = Path(".env")


def ensure_local_key(env_file: Path = ENV_FILE) -> bool:
    """Write a random `API_KEY` into `env_file` when no key is configured; True if so."""
    settings = get_api_settings()
    if settings.key_digests():
        return False
    existing = env_file.read_text() if env_file.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    env_file.write_text(f"{existing}{separator}API_KEY={secrets.token_urlsafe(32)}\n")
    env_file.chmod(0o600)
    return True


def main() -> int:
    host = os.environ.get("API_HOST", "127.0.0.1")
    port = int(os.environ.get("API_PORT", "8000"))
    if ensure_local_key():
        sys.stdout.write(f"Generated a random API key into {ENV_FILE.resolve()} (API_KEY).\n")
    sys.stdout.write(
        f"\nServing the API on http://{host}:{port} (docs: http://{host}:{port}/docs)\n"
        f'Try:  curl -H "X-API-Key: $(grep ^API_KEY= .env | cut -d= -f2-)" '
        f"http://{host}:{port}/api/crypto/latest\n\n"
    )
    sys.stdout.flush()
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
