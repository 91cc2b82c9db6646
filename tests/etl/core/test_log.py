"""JSON log lines: the run id on every line, secrets never in clear."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import SecretStr

from etl.core.log import configure_logging, correlation, mask_secrets
from etl.core.settings import Settings, get_settings


def test_secrets_are_masked_everywhere_in_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    settings = get_settings(
        gemini_api_key="account-AbCdEf123456",
        api_keys="key-one-1234,sha256:abcd",
        database_url="postgresql://etl:pg-pass-9876@db/crypto",
        _env_file=None,
    )
    configure_logging(settings)
    log = logging.getLogger("test.secrets")
    with correlation("run-42"):
        log.warning("calling with %s", "account-AbCdEf123456", extra={"header": "key-one-1234"})
        try:
            raise RuntimeError("could not connect with pg-pass-9876")
        except RuntimeError:
            log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    text = json.dumps(lines)
    for secret in ("account-AbCdEf123456", "key-one-1234", "pg-pass-9876"):
        assert secret not in text
    assert lines[0]["event"] == "calling with ***" and lines[0]["header"] == "***"
    assert "could not connect with ***" in lines[1]["exc_info"]
    assert all(line["run_id"] == "run-42" for line in lines)
    logging.getLogger().handlers = [logging.StreamHandler(io.StringIO())]


CURSOR = "cursor-signing-secret-0123"


class _WithCursorSecret(Settings):
    """A subclass adding a secret, as the API's settings add `CURSOR_SECRET`."""

    cursor_secret: SecretStr | None = None


def _logged_lines(capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, str]], str]:
    raw = capsys.readouterr().err
    logging.getLogger().handlers = [logging.StreamHandler(io.StringIO())]
    return [json.loads(line) for line in raw.splitlines()], raw


@pytest.mark.parametrize(
    "secret",
    ['quote"in-the\\key-123', "clé-non-ascii-ß-456", "new\nline-key-789", "pct%40and:colon"],
)
def test_secrets_are_masked_in_every_spelling_a_traceback_gives_them(
    secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON escapes `"`, `\\` and non-ASCII in the finished line; a repr in a traceback
    escapes them differently again: the secret must not survive in any of them."""
    configure_logging(get_settings(gemini_api_key=secret, _env_file=None))
    log = logging.getLogger("test.spellings")
    try:
        raise KeyError(secret)  # a repr in the traceback
    except KeyError:
        log.exception("lookup failed for %s", secret, extra={"bytes": repr(secret.encode())})
    lines, raw = _logged_lines(capsys)
    decoded = json.dumps(lines, ensure_ascii=False)
    assert secret not in decoded and repr(secret)[1:-1] not in decoded
    assert secret not in raw and repr(secret.encode())[2:-1] not in decoded
    assert lines[0]["event"] == "lookup failed for ***"
    assert "KeyError: '***'" in lines[0]["exc_info"] or 'KeyError: "***"' in lines[0]["exc_info"]


def test_every_secret_field_of_the_settings_is_masked_and_url_passwords_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(_WithCursorSecret(cursor_secret=SecretStr(CURSOR), _env_file=None))
    logging.getLogger("test.cursor").warning(
        "signed with cursor-signing-secret-0123 via redis://:other-pass@cache:6379/0"
    )
    lines, _ = _logged_lines(capsys)
    assert lines[0]["event"] == "signed with *** via redis://:***@cache:6379/0"


def test_mask_secrets_is_the_log_masking_for_stored_text() -> None:
    text = 'failed: {"key": "a\\"b-secret"} at postgresql://u:p4ss@db/x'
    assert mask_secrets(text, ['a"b-secret']) == 'failed: {"key": "***"} at postgresql://u:***@db/x'
