"""Real Chromium on a phone-sized screen: a guest opens the link from the email the SMTP
server caught, sees the booking, changes dates, writes to the host and cancels with the
refund shown first, in English and in German. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests

from bookings.choices import BookingStatus
from bookings.models import Booking, GuestMessage
from testkit.processes import wait_until
from tests.monitoring.browser import browser_page
from tests.support.servers import ARTIFACTS

pytestmark = [
    pytest.mark.needs("browser"),
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

PHONE = {"width": 390, "height": 844}

WORDS = {
    "en": {
        "booking": "Your booking",
        "confirmed": "Confirmed",
        "changed": "Your stay is changed",
        "sent": "Sent. The host answers here",
        "refund": "What you get back",
        "cancelled": "Your booking is cancelled",
        "status_cancelled": "Cancelled",
    },
    "de": {
        "booking": "Ihre Buchung",
        "confirmed": "Bestätigt",
        "changed": "Ihr Aufenthalt ist geändert",
        "sent": "Gesendet. Der Gastgeber antwortet",
        "refund": "Was Sie zurückbekommen",
        "cancelled": "Ihre Buchung ist storniert",
        "status_cancelled": "Storniert",
    },
}


def _emailed_link(mailbox, address: str, reference: str) -> str:
    def find() -> str | None:
        for message in mailbox.messages:
            if address not in message["to"]:
                continue
            parsed = email.message_from_string(message["data"], policy=email.policy.default)
            body = parsed.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            found = re.search(rf"http://\S+/stay/{reference}/\?token=\S+", text)
            if found:
                return found.group(0)
        return None

    return wait_until(find, 30, what="the confirmation email with the guest link")


@pytest.mark.parametrize("language", ["en", "de"])
def test_a_guest_uses_the_emailed_link_in_chromium(
    language, live_server, live_worker, mailbox, alice, future
):
    ARTIFACTS.mkdir(exist_ok=True)
    words = WORDS[language]
    address = f"guest-{language}@example.test"
    check_in = future + timedelta(days=5)
    created = requests.post(
        f"{live_server.url}/api/v1/bookings/",
        json={
            "property": str(alice.property.public_id),
            "check_in": check_in.isoformat(),
            "check_out": (check_in + timedelta(days=3)).isoformat(),
            "guests": 2,
            "guest": {"name": "Ana Costa", "email": address},
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]
    link = urlsplit(_emailed_link(mailbox, address, reference))
    # The email names the configured public address; this run serves it on live_server.
    opened = f"{live_server.url}{link.path}?{link.query}"

    with browser_page(viewport=PHONE, locale="de-DE" if language == "de" else "en-GB") as page:
        page.goto(opened)
        assert page.url == f"{live_server.url}/stay/{reference}/"  # the token left the address
        assert page.locator("html").get_attribute("lang") == language
        assert words["booking"] in page.locator("h1").inner_text()
        assert words["confirmed"] in page.locator("#booking-status").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"guest-booking-{language}.png"), full_page=True)

        # Change dates: the new price first, then confirm it.
        page.click(f"a[href='/stay/{reference}/change/']")
        page.fill("#id_check_out", (check_in + timedelta(days=4)).isoformat())
        page.click("#see-price")
        page.wait_for_selector("#new-total")
        new_total = page.locator("#new-total").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"guest-change-{language}.png"), full_page=True)
        page.click("#confirm-change")
        page.wait_for_selector(f"text={words['changed']}")
        assert page.locator("#total").inner_text() == new_total

        # A message to the host.
        page.click(f"a[href='/stay/{reference}/messages/']")
        page.fill("#id_body", f"Hello from the {language} test")
        page.click("#send-message")
        page.wait_for_selector(f"text={words['sent']}")
        assert f"Hello from the {language} test" in page.locator("#thread").inner_text()

        # Cancel: the refund is on screen before the guest confirms.
        page.click(f"a[href='/stay/{reference}/cancel/']")
        assert words["refund"] in page.content()
        assert page.locator("#refund").is_visible()
        page.screenshot(path=str(ARTIFACTS / f"guest-cancel-{language}.png"), full_page=True)
        # (No ORM in here: Playwright's sync API runs an event loop in this thread.)
        page.click("#confirm-cancel")
        page.wait_for_selector(f"text={words['cancelled']}")
        assert words["status_cancelled"] in page.locator("#booking-status").inner_text()

    booking = Booking.objects.get(reference=reference)
    assert booking.status == BookingStatus.CANCELLED and booking.nights == 4
    assert GuestMessage.objects.filter(booking=booking, sender="guest").count() == 1
    assert (ARTIFACTS / f"guest-cancel-{language}.png").stat().st_size > 5_000
