"""Which pages are live: their regions and the notices that concern them.

Each app registers its pages (``@live_page`` style, from its ``live.py``, imported
by its ``AppConfig.ready``), as it registers dashboard panels: the kernel knows no
app. A region is a part of the page's template between ``<!--live:NAME-->`` and
``<!--/live:NAME-->``, inside an element with ``data-live-region="NAME"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.urls import Resolver404, resolve

# (the page's URL kwargs, the notice) -> whether the notice concerns this open page.
Matcher = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


@dataclass(frozen=True)
class LivePage:
    view_name: str  # the URL's name with its namespace, e.g. "admin:index"
    topics: frozenset[str]
    regions: tuple[str, ...]
    match: Matcher | None = None
    # Re-rendered this often even without notices (numbers read live from the broker).
    refresh_seconds: float | None = None


_PAGES: dict[str, LivePage] = {}


def register_live_page(
    view_name: str,
    *,
    topics: Iterable[str],
    regions: Iterable[str],
    match: Matcher | None = None,
    refresh_seconds: float | None = None,
) -> LivePage:
    page = LivePage(
        view_name=view_name,
        topics=frozenset(topics),
        regions=tuple(regions),
        match=match,
        refresh_seconds=refresh_seconds,
    )
    _PAGES[view_name] = page
    return page


def live_page_at(path: str) -> tuple[LivePage, Mapping[str, Any]] | None:
    """The live page at ``path`` and its URL kwargs; None when that page is not live."""
    try:
        found = resolve(path)
    except Resolver404:
        return None
    page = _PAGES.get(found.view_name)
    return (page, found.kwargs) if page is not None else None


def concerns(page: LivePage, kwargs: Mapping[str, Any], notice: Mapping[str, Any]) -> bool:
    if notice.get("topic") not in page.topics:
        return False
    return page.match is None or page.match(kwargs, notice)


def same(kwarg: str, field: str) -> Matcher:
    """Concerns the page when the notice's ``field`` is the page's ``kwarg`` (or unknown)."""

    def match(kwargs: Mapping[str, Any], notice: Mapping[str, Any]) -> bool:
        value = notice.get(field)
        if value is None:
            return True
        try:
            return int(kwargs[kwarg]) == int(value)
        except (KeyError, TypeError, ValueError):
            return False

    return match
