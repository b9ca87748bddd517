"""Which booking a guest page may show: the emailed link's token, then the session.

The link (``/stay/<reference>/?token=...``) is opened once: the token is checked, the
session keeps the token row's id (never the token), and the guest is redirected to the
same page without the token, so it stays out of the browser's history, of the address
a guest may share or screenshot, and of any ``Referer`` header. Every later request
re-reads the row: a revoked or expired link closes the pages at once.
"""

from __future__ import annotations

from django.http import HttpRequest

from bookings.models import Booking
from bookings.services import guest_token_live, guest_token_resolve

SESSION_KEY = "guest_links"  # {reference: token row id}
MAX_LINKS_PER_SESSION = 20  # a guest with several stays; the oldest are forgotten


def link_open(request: HttpRequest, reference: str, raw_token: str) -> Booking | None:
    """Check the emailed token for ``reference``; remember it in the session if it opens it."""
    token = guest_token_resolve(raw_token=raw_token)
    if token is None or token.booking.reference != reference:
        return None
    links = dict(request.session.get(SESSION_KEY, {}))
    links.pop(reference, None)
    links[reference] = token.pk
    while len(links) > MAX_LINKS_PER_SESSION:
        links.pop(next(iter(links)))
    if not request.session.get(SESSION_KEY):
        request.session.cycle_key()  # a session chosen by someone else never gains a booking
    request.session[SESSION_KEY] = links
    return token.booking


def session_booking(request: HttpRequest, reference: str) -> Booking | None:
    """The booking this session opened with a link that still works, if it is ``reference``."""
    token_id = request.session.get(SESSION_KEY, {}).get(reference)
    if not isinstance(token_id, int):
        return None
    token = guest_token_live(token_id=token_id)
    if token is None or token.booking.reference != reference:
        return None
    return token.booking
