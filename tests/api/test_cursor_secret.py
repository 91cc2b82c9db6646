"""`CURSOR_SECRET` signs pagination cursors: required in production, optional elsewhere."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import get_api_settings
from etl.core.log import secrets_of

PRODUCTION = {"environment": "production", "api_key": "k" * 32, "_env_file": None}


@pytest.mark.parametrize("secret", [None, "", "change-me", "short-but-random-0123"])
def test_production_refuses_to_start_without_a_real_cursor_secret(secret: str | None) -> None:
    """Without it, cursors are signed with a key derived from the key digests: anyone who can
    read a `sha256:` entry of API_KEYS could forge them."""
    with pytest.raises(ValidationError, match="CURSOR_SECRET is required in production"):
        get_api_settings(**PRODUCTION, cursor_secret=secret)


def test_production_signs_cursors_with_the_cursor_secret() -> None:
    settings = get_api_settings(**PRODUCTION, cursor_secret="s" * 40)
    assert settings.cursor_key() == b"s" * 40
    assert "s" * 40 not in repr(settings)  # a secret, not a plain string


def test_development_works_without_a_cursor_secret() -> None:
    settings = get_api_settings(api_key="dev-key-0123", _env_file=None)
    assert settings.cursor_secret is None
    assert len(settings.cursor_key()) == 32  # derived from the keys, stable across workers
    assert (
        settings.cursor_key()
        == get_api_settings(api_key="dev-key-0123", _env_file=None).cursor_key()
    )


def test_the_cursor_secret_is_masked_in_logs() -> None:
    settings = get_api_settings(**PRODUCTION, cursor_secret="s" * 40)
    assert "s" * 40 in secrets_of(settings)
