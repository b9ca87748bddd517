"""Playwright driving Debian's Chromium (Playwright's own browser download is impossible here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """``CHROMIUM_PATH`` when set (and only it), else a ``chromium`` on PATH."""
    explicit = os.environ.get("CHROMIUM_PATH")
    for candidate in (explicit,) if explicit else ("chromium", "chromium-browser"):
        if found := shutil.which(candidate):
            return found
    return None


def skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    if chromium_path() is None:
        where = os.environ.get("CHROMIUM_PATH")
        return f"no Chromium at CHROMIUM_PATH={where}" if where else "no Chromium found on PATH"
    return None


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium; open contexts (one per signed-in person) and pages on it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def browser_page(**context_options: Any) -> Iterator[Any]:
    with browser() as chromium:
        context = chromium.new_context(
            **{"viewport": {"width": 1400, "height": 1000}, **context_options}
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
