"""Keep guest tokens out of logs: ``?token=`` values and bearer credentials are redacted.

A guest link carries its secret in the query string (``/bookings/ABC/?token=...``),
so every line that prints a URL (gunicorn's access log, runserver's request log, a
Referer header) would otherwise hand the booking to whoever reads the logs.
``RedactTokens`` is a logging filter (on the console handler and ``django.server``,
config.settings LOGGING); ``config.gunicorn_logging`` does the same for gunicorn.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
# token=, access_token=, guest_token=... as a query or form parameter, raw or %-encoded.
_TOKEN_PARAMETER = re.compile(r"(?i)((?:^|[?&;/\s\"'])[a-z_]*token(?:=|%3D))[^&;#\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact_tokens(text: str) -> str:
    """``text`` with every token value replaced by ``[redacted]``."""
    if "oken" not in text and "earer" not in text:  # the usual line: no regex work
        return text
    return _BEARER.sub(rf"\1{REDACTED}", _TOKEN_PARAMETER.sub(rf"\1{REDACTED}", text))


class RedactTokens(logging.Filter):
    """Rewrite the record's message (arguments merged in) with tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the formatter's own error
            return True
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
