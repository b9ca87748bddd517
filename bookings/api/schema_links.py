"""OpenAPI links: what a client (and schemathesis' stateful run) does after booking.

The booking answer carries the reference and the secret token; every guest endpoint
takes both. drf-spectacular has no decorator for links, so a postprocessing hook adds
them (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``).
"""

from __future__ import annotations

from typing import Any

CREATE = ("/api/v1/bookings/", "post")
# (link name, path, method) of what the token opens.
FOLLOW_UPS = [
    ("GetBooking", "/api/v1/bookings/{reference}/", "get"),
    ("CancelBooking", "/api/v1/bookings/{reference}/cancel/", "post"),
    ("ListMessages", "/api/v1/bookings/{reference}/messages/", "get"),
    ("PostMessage", "/api/v1/bookings/{reference}/messages/", "post"),
    ("ReportMaintenance", "/api/v1/bookings/{reference}/maintenance/", "post"),
]


def add_booking_links(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    paths = result.get("paths", {})
    created = paths.get(CREATE[0], {}).get(CREATE[1], {}).get("responses", {}).get("201")
    if created is None:
        return result
    links = created.setdefault("links", {})
    for name, path, method in FOLLOW_UPS:
        operation = paths.get(path, {}).get(method)
        if operation is None:
            continue
        links[name] = {
            "operationId": operation["operationId"],
            "parameters": {
                "path.reference": "$response.body#/reference",
                "header.Authorization": "Bearer {$response.body#/token}",
            },
            "description": "The booking just made, opened with its token.",
        }
    return result
