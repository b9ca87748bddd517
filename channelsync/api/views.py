"""The public iCal export: ``/ical/<token>.ics``. The token is the only credential."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.http import require_safe

from channelsync.feeds.export import export_feed_build
from channelsync.selectors import channel_get_by_export_token


@require_safe
def ical_export(request: HttpRequest, token: str) -> HttpResponse:
    channel = channel_get_by_export_token(token=token)
    if channel is None:
        raise Http404("No such calendar.")
    feed = export_feed_build(
        channel=channel, today=timezone.localdate(timezone=channel.property.timezone)
    )
    last_modified = int(feed.last_modified.timestamp()) if feed.last_modified else None
    response = get_conditional_response(request, etag=feed.etag, last_modified=last_modified)
    if response is None:
        response = HttpResponse(feed.body, content_type="text/calendar; charset=utf-8")
    response["ETag"] = feed.etag
    if last_modified is not None:
        response["Last-Modified"] = http_date(last_modified)
    response["Cache-Control"] = "private, max-age=0, must-revalidate"
    return response
