"""The guest's pages behind the emailed link: what a guest sees and may do, and nothing more."""

from __future__ import annotations

import io
import logging
import random
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from automation.models import MaintenanceRequest
from bookings.choices import BookingStatus, PaymentStatus
from bookings.models import GuestMessage, Payment, Refund
from bookings.services import (
    booking_create,
    guest_token_issue,
    guest_tokens_revoke,
    payment_mark_received,
)
from tests.bookings.test_ledger import deliver_all

pytestmark = pytest.mark.django_db


@pytest.fixture
def stay(alice, future):
    alice.property.check_in_instructions = "Key box by the door, code 4711."
    alice.property.save(update_fields=["check_in_instructions"])
    return booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=3),
    )


def _open(client: Client, booking, token: str | None = None, **headers):
    token = token or guest_token_issue(booking=booking)
    response = client.get(f"/stay/{booking.reference}/", {"token": token}, **headers)
    assert response.status_code == 302, response.status_code
    assert response["Location"] == f"/stay/{booking.reference}/"  # the token is left behind
    return client.get(response["Location"], **headers)


def _settle(rng_seed: int = 3) -> None:
    deliver_all(random.Random(rng_seed))


def _png(size: tuple[int, int] = (40, 30)) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format="PNG")
    return SimpleUploadedFile("leak.png", buffer.getvalue(), content_type="image/png")


# --- Opening the link ----------------------------------------------------------------------


def test_the_emailed_link_opens_the_booking_and_leaves_the_token_behind(client, stay):
    page = _open(client, stay)
    assert page.status_code == 200
    html = page.content.decode()
    assert stay.reference in html and stay.property.name in html
    assert "350.00 EUR" in html or f"{stay.total} EUR" in html
    assert page["Referrer-Policy"] == "same-origin"
    assert "no-store" in page["Cache-Control"]
    # Later pages need no token: the session holds the token row's id.
    assert client.get(f"/stay/{stay.reference}/messages/").status_code == 200


def test_a_wrong_revoked_or_other_bookings_token_opens_nothing(client, stay, alice, future):
    other = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future + timedelta(days=10),
        check_out=future + timedelta(days=12),
    )
    other_token = guest_token_issue(booking=other)
    for reference, token in [(stay.reference, "not-a-token"), (stay.reference, other_token)]:
        response = client.get(f"/stay/{reference}/", {"token": token})
        assert response.status_code == 403
        assert "This link does not work" in response.content.decode()
        assert other.reference not in response.content.decode()
    # No link opened in this session: nothing without a token either.
    assert client.get(f"/stay/{stay.reference}/").status_code == 403
    assert client.get(f"/stay/{other.reference}/cancel/").status_code == 403


def test_revoking_the_links_closes_an_open_page(client, stay):
    assert _open(client, stay).status_code == 200
    guest_tokens_revoke(booking=stay)
    assert client.get(f"/stay/{stay.reference}/").status_code == 403


def test_a_session_opened_for_one_booking_does_not_open_another(client, stay, bob, future):
    _open(client, stay)
    bobs = booking_create(
        tenant=bob.tenant,
        property=bob.property,
        guest=bob.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    assert client.get(f"/stay/{bobs.reference}/").status_code == 403
    assert client.post(f"/stay/{bobs.reference}/cancel/").status_code == 403
    bobs.refresh_from_db()
    assert bobs.status == BookingStatus.CONFIRMED


def test_the_token_never_reaches_a_log_line(client, stay, caplog):
    token = guest_token_issue(booking=stay)
    with caplog.at_level(logging.DEBUG):
        _open(client, stay, token)
        client.get(f"/stay/{stay.reference}/", {"token": "wrong-" + token[:10]})
    assert token not in caplog.text and token[:16] not in caplog.text


# --- Languages -----------------------------------------------------------------------------


def test_the_page_speaks_the_browsers_language_and_the_guests_choice(client, stay):
    german = _open(client, stay, HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    html = german.content.decode()
    assert german["Content-Language"] == "de"
    assert '<html lang="de">' in html and "Ihre Buchung" in html and "Anreise" in html
    # The guest picks English on the page: it sticks, whatever the browser says.
    chosen = client.post("/i18n/setlang/", {"language": "en", "next": f"/stay/{stay.reference}/"})
    assert chosen.status_code == 302
    english = client.get(f"/stay/{stay.reference}/", HTTP_ACCEPT_LANGUAGE="de")
    assert "Your booking" in english.content.decode() and english["Content-Language"] == "en"


def test_every_page_has_a_german_translation(client, stay):
    _open(client, stay)
    client.post("/i18n/setlang/", {"language": "de", "next": "/"})
    expected = {
        "": "Hinweise zur Anreise",
        "cancel/": "Was Sie zurückbekommen",
        "change/": "Ihr neuer Aufenthalt",
        "messages/": "Nachrichten mit Ihrem Gastgeber",
        "report/": "Was ist nicht in Ordnung?",
    }
    for path, words in expected.items():
        html = client.get(f"/stay/{stay.reference}/{path}").content.decode()
        assert words in html, path


# --- The booking page ----------------------------------------------------------------------


def test_bank_transfer_instructions_show_the_reference_to_quote(client, stay, settings):
    _settle()
    payment = Payment.objects.get(booking=stay, status=PaymentStatus.PENDING)
    html = _open(client, stay).content.decode()
    assert f"Please transfer {payment.amount} EUR" in html
    assert payment.provider_reference in html and settings.PAYMENT_BANK_ACCOUNT in html
    payment_mark_received(payment=payment)
    _settle()
    html = client.get(f"/stay/{stay.reference}/").content.decode()
    assert "Please transfer" not in html and "Received" in html


def test_check_in_instructions_appear_only_days_before_arrival(client, stay, settings):
    settings.CHECK_IN_INSTRUCTIONS_DAYS_BEFORE = 3
    html = _open(client, stay).content.decode()  # arrival is 30 days away
    assert "Key box" not in html and "appear here on" in html
    today = timezone.localdate()
    stay.check_in, stay.check_out = today + timedelta(days=2), today + timedelta(days=5)
    stay.save(update_fields=["check_in", "check_out"])
    html = client.get(f"/stay/{stay.reference}/").content.decode()
    assert "Key box by the door, code 4711." in html


# --- Cancelling: the refund first ----------------------------------------------------------


def test_cancelling_shows_the_refund_first_and_refunds_exactly_that(client, stay):
    _settle()
    payment_mark_received(payment=Payment.objects.get(booking=stay))
    _settle()
    _open(client, stay)
    preview = client.get(f"/stay/{stay.reference}/cancel/")
    html = preview.content.decode()
    refund_shown = re.search(r'id="refund">([\d.]+) EUR', html)
    assert refund_shown is not None, html
    stay.refresh_from_db()
    assert stay.status == BookingStatus.CONFIRMED  # looking cancels nothing
    done = client.post(f"/stay/{stay.reference}/cancel/", follow=True)
    assert done.status_code == 200 and "Your booking is cancelled" in done.content.decode()
    stay.refresh_from_db()
    assert stay.status == BookingStatus.CANCELLED
    _settle()
    assert Refund.objects.get(booking=stay).amount == Decimal(refund_shown.group(1))
    assert "Cancel the booking" not in client.get(f"/stay/{stay.reference}/").content.decode()


def test_a_late_cancellation_shows_the_fee_and_what_remains_due(client, alice):
    today = timezone.localdate()
    late = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=today + timedelta(days=1),
        check_out=today + timedelta(days=3),
    )
    _open(client, late)
    html = client.get(f"/stay/{late.reference}/cancel/").content.decode()
    assert 'id="refund">0.00 EUR' in html and 'id="paid">0.00 EUR' in html
    assert "remain due to the host" in html  # moderate: 50 % within 5 days, nothing paid yet


def test_a_post_without_the_csrf_token_is_refused(stay):
    client = Client(enforce_csrf_checks=True)
    _open(client, stay)
    assert client.post(f"/stay/{stay.reference}/cancel/").status_code == 403
    stay.refresh_from_db()
    assert stay.status == BookingStatus.CONFIRMED


# --- Changing dates: re-quote, then confirm --------------------------------------------------


def _change(client, booking, nights, HTTP_ACCEPT_LANGUAGE="en", **extra):
    return client.post(
        f"/stay/{booking.reference}/change/",
        {
            "check_in": booking.check_in.isoformat(),
            "check_out": (booking.check_in + timedelta(days=nights)).isoformat(),
            "guests": booking.guests_count,
            **extra,
        },
        HTTP_ACCEPT_LANGUAGE=HTTP_ACCEPT_LANGUAGE,
    )


def test_changing_dates_shows_the_new_price_then_changes_on_confirm(client, stay):
    _open(client, stay)
    preview = _change(client, stay, 5)
    html = preview.content.decode()
    new_total = re.search(r'id="new-total">([\d.]+) EUR', html)
    assert preview.status_code == 200 and new_total is not None
    stay.refresh_from_db()
    assert stay.nights == 3  # a preview changes nothing
    assert Decimal(new_total.group(1)) > stay.total

    stale = _change(client, stay, 5, confirm="1", expected_total="1.00")
    assert "The price changed since you looked" in stale.content.decode()
    stay.refresh_from_db()
    assert stay.nights == 3

    done = _change(client, stay, 5, confirm="1", expected_total=new_total.group(1))
    assert done.status_code == 302
    stay.refresh_from_db()
    assert stay.nights == 5 and stay.total == Decimal(new_total.group(1))
    _settle()
    asked = sum(
        Payment.objects.filter(booking=stay, status=PaymentStatus.PENDING).values_list(
            "amount", flat=True
        )
    )
    assert asked == stay.total  # the money followed the change


def test_a_german_guest_confirms_the_price_shown_in_german_figures(client, stay):
    _open(client, stay, HTTP_ACCEPT_LANGUAGE="de")
    preview = _change(client, stay, 5, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    shown = re.search(r'id="new-total">([\d.]+,\d\d) EUR', preview)  # 550,00 on the page
    expected = re.search(r'name="expected_total" value="([^"]+)"', preview)
    assert shown is not None and expected is not None
    assert expected.group(1) == shown.group(1).replace(".", "").replace(",", ".")  # 550.00
    done = _change(
        client, stay, 5, confirm="1", expected_total=expected.group(1), HTTP_ACCEPT_LANGUAGE="de"
    )
    assert done.status_code == 302
    stay.refresh_from_db()
    assert stay.nights == 5


def test_a_change_onto_taken_dates_is_a_form_error(client, stay, alice):
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=stay.check_out,
        check_out=stay.check_out + timedelta(days=2),
    )
    _open(client, stay)
    response = _change(client, stay, 4)
    assert response.status_code == 400
    assert "The home is not free on these dates." in response.content.decode()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"check_out": "not-a-date"}, "Enter a valid date."),
        ({"guests": "0"}, "greater than or equal to 1"),
        ({"guests": "99"}, "does not take that many guests"),
    ],
)
def test_bad_change_input_is_a_form_error_never_a_500(client, stay, fields, words):
    _open(client, stay)
    body = {
        "check_in": stay.check_in.isoformat(),
        "check_out": stay.check_out.isoformat(),
        "guests": "2",
        **fields,
    }
    response = client.post(f"/stay/{stay.reference}/change/", body)
    assert response.status_code == 400 and words in response.content.decode()


# --- Messages and problems -----------------------------------------------------------------


def test_the_guest_writes_to_the_host_and_sees_the_thread(client, stay):
    _open(client, stay)
    sent = client.post(
        f"/stay/{stay.reference}/messages/", {"body": "Can we arrive at 22:00?"}, follow=True
    )
    assert "Can we arrive at 22:00?" in sent.content.decode()
    assert GuestMessage.objects.get(booking=stay).sender == "guest"
    empty = client.post(f"/stay/{stay.reference}/messages/", {"body": "   "})
    assert empty.status_code == 400 and GuestMessage.objects.filter(booking=stay).count() == 1


def test_a_problem_with_a_photo_becomes_a_maintenance_request(client, stay):
    _open(client, stay)
    response = client.post(
        f"/stay/{stay.reference}/report/",
        {"title": "Tap leaks", "description": "Kitchen", "priority": "urgent", "photo": _png()},
    )
    assert response.status_code == 302
    request = MaintenanceRequest.objects.get(booking=stay)
    assert request.reported_by == "guest" and request.priority == "urgent"
    assert request.photo.name and request.tenant_id == stay.tenant_id


def test_a_photo_that_is_not_an_image_or_too_large_is_refused(client, stay, settings):
    _open(client, stay)
    fake = SimpleUploadedFile("x.png", b"#!/bin/sh\nrm -rf /\n", content_type="image/png")
    response = client.post(
        f"/stay/{stay.reference}/report/", {"title": "x", "priority": "normal", "photo": fake}
    )
    assert response.status_code == 400 and "Upload a valid image" in response.content.decode()
    settings.GUEST_PHOTO_MAX_BYTES = 100
    response = client.post(
        f"/stay/{stay.reference}/report/",
        {"title": "x", "priority": "normal", "photo": _png((200, 200))},
    )
    assert response.status_code == 400 and "larger than" in response.content.decode()
    assert not MaintenanceRequest.objects.filter(booking=stay).exists()


# --- Hostile input -------------------------------------------------------------------------


def test_an_upload_larger_than_a_photo_is_refused_before_it_is_read(client, stay, settings):
    settings.GUEST_PHOTO_MAX_BYTES = 1000
    _open(client, stay)
    big = SimpleUploadedFile("big.png", b"\x89PNG" + b"0" * 400_000, content_type="image/png")
    response = client.post(
        f"/stay/{stay.reference}/report/", {"title": "x", "priority": "normal", "photo": big}
    )
    assert response.status_code == 413 and "too large" in response.content.decode()
    assert not MaintenanceRequest.objects.filter(booking=stay).exists()


def test_a_flood_of_posts_is_held_back_per_booking(client, stay, settings):
    settings.GUEST_PAGE_POSTS_PER_MINUTE = 3
    _open(client, stay)
    codes = [
        client.post(f"/stay/{stay.reference}/messages/", {"body": f"spam {n}"}).status_code
        for n in range(5)
    ]
    assert codes[:3] == [302, 302, 302] and set(codes[3:]) == {429}
    assert GuestMessage.objects.filter(booking=stay).count() == 3


def test_a_channel_stay_shows_no_change_or_cancel_and_refuses_them(client, alice, future):
    airbnb = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future + timedelta(days=40),
        check_out=future + timedelta(days=43),
        source="airbnb",
    )
    html = _open(client, airbnb).content.decode()
    assert f"/stay/{airbnb.reference}/cancel/" not in html
    assert f"/stay/{airbnb.reference}/change/" not in html
    refused = client.post(f"/stay/{airbnb.reference}/cancel/", follow=True)
    assert "change or cancel it there" in refused.content.decode()
    airbnb.refresh_from_db()
    assert airbnb.status == BookingStatus.CONFIRMED
