"""gunicorn's logger with guest tokens redacted from the access log.

Run gunicorn with ``--logger-class config.gunicorn_logging.TokenRedactingLogger``:
the request line (``%(r)s``), query string (``%(q)s``), Referer (``%(f)s``) and any
header or environ atom are logged with ``token=`` values and bearer credentials
replaced by ``[redacted]`` (config.log_redaction).
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from config.log_redaction import REDACTED, redact_tokens

_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e")


class TokenRedactingLogger(Logger):  # type: ignore[misc]
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact_tokens(value)
        for key in _SECRET_HEADERS:
            if atoms.get(key):
                atoms[key] = REDACTED
        return atoms
