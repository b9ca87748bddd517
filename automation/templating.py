"""Rendering message templates with Django's template engine, safely.

Templates are written by tenants, so they get their own ``Engine``: no
loaders (``{% include %}``/``{% extends %}`` find nothing), no libraries
beyond the builtins, and a context of plain values (no model instances, so no
method can be reached). Messages are plain text, so autoescaping is off
explicitly: "O'Brien & Sons" must arrive as typed, not as HTML entities. If an
HTML part is ever added, render it with ``autoescape=True``.

Unknown variables are caught when the template is saved: it is rendered
against a sample context with ``string_if_invalid`` set to a marker that
names the variable, and a marker in the output is an error.
"""

from __future__ import annotations

import re
from datetime import date, time
from functools import cache
from typing import Any

from django.template import Context, Engine, TemplateSyntaxError

from bookings.models import Booking

_INVALID_MARKER = "\x00INVALID[%s]\x00"
_INVALID_RE = re.compile(r"\x00INVALID\[(.*?)\]\x00")

# What a template may use; the admin's help text lists the same names.
GUEST_LINK_PLACEHOLDER = "{guest_link}"


class TemplateProblem(Exception):
    pass


@cache
def _engine(*, strict: bool) -> Engine:
    return Engine(
        dirs=[],
        app_dirs=False,
        loaders=[],
        libraries={},
        autoescape=False,
        string_if_invalid=_INVALID_MARKER if strict else "",
    )


def booking_context(booking: Booking) -> dict[str, Any]:
    """The variables a template sees: plain values only."""
    prop, guest = booking.property, booking.guest
    return {
        "booking": {
            "reference": booking.reference,
            "check_in": booking.check_in,
            "check_out": booking.check_out,
            "nights": booking.nights,
            "guests_count": booking.guests_count,
            "total": booking.total,
            "currency": booking.currency,
            "status": booking.get_status_display(),
        },
        "guest": {"name": guest.name, "email": guest.email, "phone": guest.phone},
        "property": {
            "name": prop.name,
            "address": prop.address,
            "check_in_time": prop.check_in_time,
            "check_out_time": prop.check_out_time,
            "timezone": str(prop.timezone),
        },
        # Replaced at send time by a freshly minted private link (never stored).
        "guest_link": GUEST_LINK_PLACEHOLDER,
    }


SAMPLE_CONTEXT: dict[str, Any] = {
    "booking": {
        "reference": "ABCD2345",
        "check_in": date(2026, 7, 1),
        "check_out": date(2026, 7, 4),
        "nights": 3,
        "guests_count": 2,
        "total": "450.00",
        "currency": "EUR",
        "status": "Confirmed",
    },
    "guest": {"name": "Ana Costa", "email": "ana@example.test", "phone": "+351900000000"},
    "property": {
        "name": "Sea View Flat",
        "address": "Rua 1, Lisboa",
        "check_in_time": time(15, 0),
        "check_out_time": time(11, 0),
        "timezone": "Europe/Lisbon",
    },
    "guest_link": GUEST_LINK_PLACEHOLDER,
}


def template_validate(source: str) -> None:
    """Raise TemplateProblem for a syntax error or a variable the context does not have."""
    try:
        output = _engine(strict=True).from_string(source).render(Context(SAMPLE_CONTEXT))
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"Template error: {exc}") from exc
    except Exception as exc:  # a filter failing on the sample data, a missing include
        raise TemplateProblem(f"Template cannot be rendered: {exc}") from exc
    unknown = sorted(set(_INVALID_RE.findall(output)))
    if unknown:
        raise TemplateProblem(
            "Unknown variable(s): "
            + ", ".join(unknown)
            + ". Use booking.*, guest.*, property.* or guest_link."
        )


def template_render(source: str, context: dict[str, Any]) -> str:
    """Render a validated template (plain text, autoescape off; see the module doc)."""
    return _engine(strict=False).from_string(source).render(Context(context, autoescape=False))
