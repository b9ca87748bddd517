"""The guest API: every endpoint, every error code, idempotency and token scoping."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from bookings.api.idempotency import idempotency_keys_purge
from bookings.models import Booking, GuestMessage, IdempotencyKey, RateOverride
from bookings.services import block_create, booking_create, guest_token_issue, guest_tokens_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def _body(world, check_in, nights=3, guests=2, **extra):
    return {
        "property": str(world.property.public_id),
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=nights)).isoformat(),
        "guests": guests,
        "guest": {"name": "Ana Costa", "email": "ana@example.test", "phone": "+351 900 000 000"},
        **extra,
    }


def _post(api, body, key="key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return api.post("/api/v1/bookings/", body, format="json", **headers)


def _error(response):
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


def _message(response):
    return response.json()["error"]["message"]


# --- Public property endpoints ---------------------------------------------------------


def test_property_details_are_public(api, alice):
    data = api.get(f"/api/v1/properties/{alice.property.public_id}/").json()
    assert data["id"] == str(alice.property.public_id) and data["name"] == alice.property.name
    assert "tenant" not in data and "address" not in data


def test_an_unknown_property_is_a_json_404(api):
    response = api.get(f"/api/v1/properties/{uuid.uuid4()}/")
    assert response.status_code == 404 and _error(response) == "not_found"


def test_availability_marks_booked_and_blocked_nights(api, alice, future):
    booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    block_create(
        tenant=alice.tenant,
        property=alice.property,
        start=future + timedelta(days=3),
        end=future + timedelta(days=4),
    )
    response = api.get(
        f"/api/v1/properties/{alice.property.public_id}/availability/",
        {"start": future.isoformat(), "end": (future + timedelta(days=5)).isoformat()},
    )
    assert [day["available"] for day in response.json()["days"]] == [
        False,
        False,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"start": "2026-13-01", "end": "2026-12-01"},
        {"start": "2027-01-05", "end": "2027-01-01"},
        {"start": "2027-01-01", "end": "2029-01-01"},
    ],
)
def test_bad_availability_ranges_are_refused_clearly(api, alice, params):
    response = api.get(f"/api/v1/properties/{alice.property.public_id}/availability/", params)
    assert response.status_code == 400 and _error(response) == "invalid"
    assert response.json()["error"]["fields"]


def test_quote_uses_rate_overrides_cleaning_and_taxes(api, alice, future):
    alice.property.tax_rate = Decimal("10.00")
    alice.property.save()
    RateOverride.objects.create(
        tenant=alice.tenant,
        property=alice.property,
        date=future + timedelta(days=1),
        nightly_rate=Decimal("250.00"),
    )
    data = api.get(
        f"/api/v1/properties/{alice.property.public_id}/quote/",
        {
            "check_in": future.isoformat(),
            "check_out": (future + timedelta(days=3)).isoformat(),
            "guests": 2,
        },
    ).json()
    assert [night["rate"] for night in data["nightly"]] == ["100.00", "250.00", "100.00"]
    assert (data["accommodation"], data["cleaning_fee"], data["taxes"], data["total"]) == (
        "450.00",
        "50.00",
        "50.00",
        "550.00",
    )
    assert data["available"] is True and data["nights"] == 3


def test_quote_for_too_many_guests_is_refused(api, alice, future):
    response = api.get(
        f"/api/v1/properties/{alice.property.public_id}/quote/",
        {
            "check_in": future.isoformat(),
            "check_out": (future + timedelta(days=2)).isoformat(),
            "guests": 9,
        },
    )
    assert response.status_code == 400 and _error(response) == "too_many_guests"


# --- Creating a booking ------------------------------------------------------------------


def test_booking_through_the_api_returns_the_booking_and_its_secret_token(api, alice, future):
    response = _post(api, _body(alice, future))
    assert response.status_code == 201, response.json()
    data = response.json()
    booking = Booking.objects.get(reference=data["reference"])
    assert booking.source == "direct" and booking.guest.email == "ana@example.test"
    assert data["total"] == "350.00" and len(data["token"]) >= 40
    assert data["link"].endswith(f"{booking.reference}/?token={data['token']}")
    assert booking.access_tokens.get().token_hash != data["token"]  # only the hash is stored


def test_repeating_a_request_with_its_key_replays_the_first_answer(api, alice, future):
    first = _post(api, _body(alice, future), key="same-key")
    again = _post(api, _body(alice, future), key="same-key")
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again["Idempotent-Replayed"] == "true"
    assert Booking.objects.count() == 1


def test_an_error_answer_is_replayed_too(api, alice, future):
    first = _post(api, _body(alice, future, guests=9), key="k-err")
    again = _post(api, _body(alice, future, guests=9), key="k-err")
    assert first.status_code == again.status_code == 400 and again.json() == first.json()


def test_a_key_reused_with_another_body_is_refused(api, alice, future):
    _post(api, _body(alice, future), key="k-1")
    response = _post(api, _body(alice, future + timedelta(days=10)), key="k-1")
    assert response.status_code == 422 and _error(response) == "idempotency_key_reused"
    assert "Idempotency-Key was already used with a different request" in _message(response)
    assert Booking.objects.count() == 1


def test_each_key_of_one_client_replays_its_own_answer(api, alice, future):
    first = _post(api, _body(alice, future), key="k-a")
    second = _post(api, _body(alice, future + timedelta(days=10)), key="k-b")
    assert first.json()["reference"] != second.json()["reference"]
    for key, answer in (("k-b", second), ("k-a", first)):
        body = _body(alice, future + timedelta(days=10) if key == "k-b" else future)
        again = _post(api, body, key=key)
        assert again.status_code == 201 and again.json() == answer.json()
    assert Booking.objects.count() == 2


def test_an_answer_that_cannot_be_unsealed_is_not_replayed(api, alice, future):
    """A row whose answer was stored readable (before answers were sealed) or sealed under a
    key since rotated: the repeat is told to use a new key, nothing is booked again."""
    body = _body(alice, future)
    first = _post(api, body, key="k-unsealed")
    for stored in ({"reference": first.json()["reference"]}, {"sealed": "not-a-fernet-token"}):
        IdempotencyKey.objects.update(response_body=stored)
        response = _post(api, body, key="k-unsealed")
        assert response.status_code == 409 and _error(response) == "replay_unavailable"
        assert "can no longer be replayed; use a new key" in _message(response)
        assert "Idempotent-Replayed" not in response
    assert Booking.objects.count() == 1


def test_a_key_purged_between_its_claim_and_its_repeat_asks_for_a_retry(
    api, alice, future, monkeypatch
):
    from bookings.api import idempotency

    # The claim found the key held; the purge deleted the row before the repeat read it.
    monkeypatch.setattr(idempotency, "_claim", lambda *args: None)
    response = _post(api, _body(alice, future), key="k-purged")
    assert response.status_code == 409 and _error(response) == "request_in_progress"
    assert _message(response) == "Retry this request."
    assert Booking.objects.count() == 0


def _in_flight_claim(body, key, age=timedelta(0)):
    """What a request still working (or dead mid-request) leaves: a claimed, unfinished key."""
    from bookings.api.idempotency import _mac, client_scope, fingerprint
    from bookings.api.serializers import BookingCreateSerializer

    raw = APIRequestFactory().post("/api/v1/bookings/", body, format="json")
    request = Request(raw, parsers=[JSONParser()])
    payload = BookingCreateSerializer(data=request.data)
    assert payload.is_valid(), payload.errors
    scope = client_scope(request, body["guest"]["email"])
    record = IdempotencyKey.objects.create(
        scope=scope,
        key=_mac("key", scope, key),
        fingerprint=fingerprint(request, payload.validated_data),
    )
    IdempotencyKey.objects.filter(pk=record.pk).update(created_at=timezone.now() - age)
    return record


def test_a_repeat_while_the_first_request_runs_gets_409(api, alice, future):
    body = _body(alice, future)
    _in_flight_claim(body, "k-busy")
    response = _post(api, body, key="k-busy")
    assert response.status_code == 409 and _error(response) == "request_in_progress"
    assert "Idempotency-Key is still being processed" in _message(response)
    assert Booking.objects.count() == 0


def test_keys_expire_after_a_day_and_are_purged(api, alice, future):
    _post(api, _body(alice, future), key="k-old")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    _post(api, _body(alice, future + timedelta(days=10)), key="k-new")
    assert idempotency_keys_purge() == 1
    assert IdempotencyKey.objects.count() == 1  # the new key stays
    # The same key is now new: the request runs again (and the dates are taken).
    response = _post(api, _body(alice, future), key="k-old")
    assert response.status_code == 409 and _error(response) == "unavailable"


def test_an_expired_key_not_yet_purged_is_as_good_as_new(api, alice, future):
    _post(api, _body(alice, future), key="k-stale")
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    # Another request under the stale key: a new booking, not a replay or a refusal.
    response = _post(api, _body(alice, future + timedelta(days=10)), key="k-stale")
    assert response.status_code == 201, response.json()
    assert Booking.objects.count() == 2
    record = IdempotencyKey.objects.get()
    assert record.completed and record.created_at > timezone.now() - timedelta(minutes=1)
    assert _post(api, _body(alice, future + timedelta(days=10)), key="k-stale").json() == (
        response.json()
    )


def test_a_booking_without_idempotency_key_is_refused(api, alice, future):
    response = _post(api, _body(alice, future), key=None)
    assert response.status_code == 400 and _error(response) == "idempotency_key_required"
    assert _message(response).startswith("Send an Idempotency-Key header")


def test_a_key_of_more_than_255_characters_is_refused(api, alice, future):
    response = _post(api, _body(alice, future), key="k" * 256)
    assert response.status_code == 400 and _error(response) == "idempotency_key_invalid"
    assert _message(response) == "Idempotency-Key is at most 255 characters."
    assert Booking.objects.count() == 0
    assert _post(api, _body(alice, future), key="k" * 255).status_code == 201


def test_invalid_fields_are_a_400_that_names_them(api, alice, future):
    response = _post(api, {**_body(alice, future), "guests": "many"}, key="k-invalid")
    assert response.status_code == 400 and _error(response) == "invalid"
    assert _message(response) == "The request has invalid fields."
    assert "guests" in response.json()["error"]["fields"]
    assert not IdempotencyKey.objects.exists()  # validation never touches the key


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"guests": 9}, 400, "too_many_guests"),
        ({"nights": 0}, 400, "invalid_dates"),
        ({"past": True}, 400, "past_date"),
        ({"property": str(uuid.uuid4())}, 404, "not_found"),
        ({"guest": {"name": "x", "email": "not-an-email"}}, 400, "invalid"),
    ],
)
def test_bad_bookings_get_a_4xx_with_a_stable_code(api, alice, future, change, status, code):
    change = dict(change)  # the parameter is shared by every run of this test in the process
    nights = change.pop("nights", 3)
    check_in = timezone.localdate() - timedelta(days=3) if change.pop("past", False) else future
    response = _post(
        api, {**_body(alice, check_in, nights=nights), **change}, key=str(uuid.uuid4())
    )
    assert response.status_code == status and _error(response) == code


def test_unavailable_dates_are_a_409(api, alice, future):
    assert _post(api, _body(alice, future), key="a").status_code == 201
    response = _post(api, _body(alice, future + timedelta(days=1)), key="b")
    assert response.status_code == 409 and _error(response) == "unavailable"


def test_malformed_json_is_a_clear_400(api):
    response = api.post(
        "/api/v1/bookings/", "{not json", content_type="application/json", HTTP_IDEMPOTENCY_KEY="x"
    )
    assert response.status_code == 400 and _error(response) == "parse_error"


# --- The guest's token ------------------------------------------------------------------------


@pytest.fixture
def booked(api, alice, future):
    data = _post(api, _body(alice, future), key="booked").json()
    return data["reference"], data["token"]


def _as_guest(api, token):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_the_token_opens_its_booking(api, booked):
    reference, token = booked
    response = _as_guest(api, token).get(f"/api/v1/bookings/{reference}/")
    assert response.status_code == 200 and response.json()["reference"] == reference


def test_the_emailed_link_form_works_too(api, booked):
    reference, token = booked
    assert api.get(f"/api/v1/bookings/{reference}/", {"token": token}).status_code == 200


def test_no_token_or_a_wrong_one_is_401(api, booked):
    reference, _ = booked
    assert _error(api.get(f"/api/v1/bookings/{reference}/")) == "not_authenticated"
    response = _as_guest(api, "made-up").get(f"/api/v1/bookings/{reference}/")
    assert response.status_code == 401 and _error(response) == "authentication_failed"


def test_a_token_does_not_open_another_booking_even_of_another_tenant(
    api, alice, bob, booked, future
):
    reference, token = booked
    other = booking_create(
        tenant=alice.tenant,
        property=alice.property,
        guest=alice.guest,
        check_in=future + timedelta(days=20),
        check_out=future + timedelta(days=22),
    )
    foreign = booking_create(
        tenant=bob.tenant,
        property=bob.property,
        guest=bob.guest,
        check_in=future,
        check_out=future + timedelta(days=2),
    )
    guest = _as_guest(api, token)
    for ref in (other.reference, foreign.reference):
        for url in (f"/api/v1/bookings/{ref}/", f"/api/v1/bookings/{ref}/messages/"):
            response = guest.get(url)
            assert response.status_code == 404 and ref not in response.content.decode()
        assert guest.post(f"/api/v1/bookings/{ref}/cancel/").status_code == 404
    bob_token = guest_token_issue(booking=foreign)
    assert (
        _as_guest(APIClient(), bob_token).get(f"/api/v1/bookings/{reference}/").status_code == 404
    )


def test_a_revoked_token_no_longer_opens_the_booking(api, booked):
    reference, token = booked
    guest_tokens_revoke(booking=Booking.objects.get(reference=reference))
    assert _as_guest(api, token).get(f"/api/v1/bookings/{reference}/").status_code == 401


def test_the_guest_cancels_and_cannot_cancel_twice(api, booked):
    reference, token = booked
    guest = _as_guest(api, token)
    response = guest.post(f"/api/v1/bookings/{reference}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = guest.post(f"/api/v1/bookings/{reference}/cancel/")
    assert again.status_code == 409 and _error(again) == "invalid_transition"


def test_the_guest_writes_to_the_host_and_reads_the_thread(api, booked):
    reference, token = booked
    guest = _as_guest(api, token)
    created = guest.post(
        f"/api/v1/bookings/{reference}/messages/", {"body": "Late arrival ~23h"}, format="json"
    )
    assert created.status_code == 201 and created.json()["sender"] == "guest"
    assert [m["body"] for m in guest.get(f"/api/v1/bookings/{reference}/messages/").json()] == [
        "Late arrival ~23h"
    ]
    empty = guest.post(f"/api/v1/bookings/{reference}/messages/", {"body": "   "}, format="json")
    assert empty.status_code == 400
    assert GuestMessage.objects.count() == 1


def test_throttling_per_token_answers_429_in_json(api, booked, settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_THROTTLE_GUEST_TOKEN = "2/min"
    reference, token = booked
    guest = _as_guest(api, token)
    codes = [guest.get(f"/api/v1/bookings/{reference}/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert _error(guest.get(f"/api/v1/bookings/{reference}/")) == "throttled"


def test_cors_headers_are_sent_for_the_api_only(api, alice, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://book.example.com"]
    origin = {"HTTP_ORIGIN": "https://book.example.com"}
    api_response = api.get(f"/api/v1/properties/{alice.property.public_id}/", **origin)
    assert api_response["Access-Control-Allow-Origin"] == "https://book.example.com"
    admin_response = api.get("/admin/login/", **origin)
    assert "Access-Control-Allow-Origin" not in admin_response
