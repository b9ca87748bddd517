"""Rendering a live page's regions as one viewer sees it, outside a browser's request.

The page's own view renders it (so a live region can never show more than the page
does on reload): a GET request is built for the viewer, the view's response
rendered, and the text between each region's markers taken. The request carries no
session and no cookies: what a region shows depends only on the viewer's rights.
Regions hold no forms (a CSRF token made here would be nobody's).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, QueryDict
from django.urls import resolve


class NotShown(Exception):
    """The view did not show the page to this viewer (redirect, 403, 404)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the page answered {status}")
        self.status = status


def _request(user: Any, path: str, query: str, host: str) -> HttpRequest:
    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = path
    request.GET = QueryDict(query)
    request.META = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SCRIPT_NAME": "",
        "HTTP_HOST": host,
        "SERVER_NAME": host.split(":")[0],
        "SERVER_PORT": "80",
    }
    request.user = user
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()  # never saved
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    request.resolver_match = resolve(path)
    return request


def extract(html: str, region: str) -> str | None:
    start, end = f"<!--live:{region}-->", f"<!--/live:{region}-->"
    first = html.find(start)
    if first < 0:
        return None
    last = html.find(end, first)
    return html[first + len(start) : last] if last >= 0 else None


def render_regions(
    *, user: Any, path: str, query: str, host: str, regions: tuple[str, ...]
) -> dict[str, str]:
    """Each region's HTML; raises NotShown when the view would not show the page."""
    request = _request(user, path, query, host)
    match = request.resolver_match
    assert match is not None
    try:
        response = match.func(request, *match.args, **match.kwargs)
    except PermissionDenied:
        raise NotShown(403) from None
    except Http404:
        raise NotShown(404) from None
    if hasattr(response, "render"):
        response.render()
    if response.status_code != 200:
        raise NotShown(response.status_code)
    html = response.content.decode(response.charset or "utf-8")
    found = {region: extract(html, region) for region in regions}
    return {region: text for region, text in found.items() if text is not None}
