"""The guest API's perimeter (issue 13): throttles that a header cannot dodge, limits on
unpaid bookings, Idempotency-Keys that belong to their client, and bad input that is a
clear 4xx with nothing written."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from cryptography.fernet import InvalidToken
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory

from bookings.api.idempotency import _seal, _unseal, client_scope
from bookings.errors import BookingError
from bookings.models import Booking, GuestAccessToken, IdempotencyKey
from bookings.services import booking_create
from pms.models import Guest
from tests.factories import PASSWORD, PropertyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def _body(world, check_in, nights=3, guests=2, email="ana@example.test", name="Ana Costa"):
    return {
        "property": str(world.property.public_id),
        "check_in": check_in.isoformat(),
        "check_out": (check_in + timedelta(days=nights)).isoformat(),
        "guests": guests,
        "guest": {"name": name, "email": email, "phone": "+351 900 000 000"},
    }


def _post(api, body, key=None, **headers):
    return api.post(
        "/api/v1/bookings/",
        body,
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
        **headers,
    )


def _raw_post(api, raw: str | bytes, key="raw"):
    return api.post(
        "/api/v1/bookings/", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
    )


def _error(response):
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]["code"]


def _nothing_written():
    return Booking.objects.count() == 0 and IdempotencyKey.objects.count() == 0


# --- Throttles ------------------------------------------------------------------------------


def test_a_rotating_x_forwarded_for_is_still_throttled(api, alice, settings):
    settings.API_THROTTLE_ANON = "10/min"
    url = f"/api/v1/properties/{alice.property.public_id}/"
    codes = [api.get(url, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(1, 31)]
    assert codes.count(200) == 10 and codes.count(429) == 20


def test_behind_one_trusted_proxy_the_address_it_saw_is_the_client(api, alice, settings):
    settings.API_THROTTLE_ANON = "3/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    url = f"/api/v1/properties/{alice.property.public_id}/"
    # The client can prepend whatever it likes; our proxy appends the address it saw.
    spoofed = [
        api.get(url, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.7").status_code for n in range(6)
    ]
    assert spoofed == [200, 200, 200, 429, 429, 429]
    other_client = api.get(url, HTTP_X_FORWARDED_FOR="10.9.9.1, 203.0.113.8")
    assert other_client.status_code == 200


# --- Calendar squatting ----------------------------------------------------------------------


def test_unpaid_api_bookings_per_property_are_capped_per_hour(api, alice, future, settings):
    settings.API_BOOKINGS_PER_PROPERTY_PER_HOUR = 2
    for n in range(2):
        body = _body(alice, future + timedelta(days=5 * n), email=f"g{n}@example.test")
        assert _post(api, body).status_code == 201
    third = _post(api, _body(alice, future + timedelta(days=20), email="g9@example.test"))
    assert third.status_code == 429 and _error(third) == "booking_limit_property"
    assert Booking.objects.count() == 2
    # Another property of the same host still takes bookings.
    other = PropertyFactory.create(tenant=alice.tenant, name="Other", slug="other")
    body = {**_body(alice, future, email="g9@example.test"), "property": str(other.public_id)}
    assert _post(api, body).status_code == 201


def test_unpaid_api_bookings_per_guest_email_are_capped_per_day(api, alice, bob, future, settings):
    settings.API_BOOKINGS_PER_PROPERTY_PER_HOUR = 0
    settings.API_BOOKINGS_PER_GUEST_EMAIL_PER_DAY = 2
    assert _post(api, _body(alice, future, email="victim@example.test")).status_code == 201
    # The limit follows the address across hosts and letter case: it is the one emailed.
    assert _post(api, _body(bob, future, email="Victim@Example.test")).status_code == 201
    third = _post(api, _body(alice, future + timedelta(days=10), email="victim@example.test"))
    assert third.status_code == 429 and _error(third) == "booking_limit_guest"
    assert Booking.objects.count() == 2
    assert _post(api, _body(alice, future + timedelta(days=10))).status_code == 201


def test_admin_bookings_are_not_counted_against_the_public_limits(alice, future, settings):
    settings.API_BOOKINGS_PER_PROPERTY_PER_HOUR = 1
    for n in range(3):
        booking_create(
            tenant=alice.tenant,
            property=alice.property,
            guest=alice.guest,
            check_in=future + timedelta(days=3 * n),
            check_out=future + timedelta(days=3 * n + 2),
            source="admin",
        )
    assert Booking.objects.count() == 3


# --- Idempotency-Key -------------------------------------------------------------------------


def test_two_guests_who_pick_the_same_key_each_get_their_own_booking(api, alice, future):
    ana = _post(api, _body(alice, future), key="1")
    ben = _post(api, _body(alice, future + timedelta(days=7), email="ben@example.test"), key="1")
    assert ana.status_code == ben.status_code == 201, ben.json()
    assert ana.json()["reference"] != ben.json()["reference"]
    assert "Idempotent-Replayed" not in ben


def test_a_key_sent_from_another_address_neither_replays_nor_blocks(alice, future):
    body = _body(alice, future)
    first = _post(APIClient(REMOTE_ADDR="192.0.2.10"), body, key="guessable")
    stranger = _post(APIClient(REMOTE_ADDR="192.0.2.99"), body, key="guessable")
    assert first.status_code == 201
    # Not a replay of the first answer (its token), not "in progress": the stranger's own try.
    assert "Idempotent-Replayed" not in stranger and "token" not in stranger.json()
    assert stranger.status_code == 409 and _error(stranger) == "unavailable"
    again = _post(APIClient(REMOTE_ADDR="192.0.2.10"), body, key="guessable")
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()


def test_the_stored_answer_holds_no_readable_token_key_or_guest(api, alice, future):
    first = _post(api, _body(alice, future), key="my-secret-key-0001")
    token = first.json()["token"]
    stored = json.dumps(list(IdempotencyKey.objects.values()), default=str)
    for secret in (token, "my-secret-key-0001", first.json()["reference"], "Ana Costa"):
        assert secret not in stored
    # The same client's repeat still gets the token back, and it opens the booking.
    again = _post(api, _body(alice, future), key="my-secret-key-0001")
    assert again.json()["token"] == token and GuestAccessToken.objects.count() == 1
    opened = APIClient().get(
        f"/api/v1/bookings/{again.json()['reference']}/", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert opened.status_code == 200


def test_a_claim_older_than_the_lease_is_taken_over(api, alice, future, settings):
    from tests.bookings.test_guest_api import _in_flight_claim

    settings.IDEMPOTENCY_CLAIM_LEASE = timedelta(seconds=30)
    body = _body(alice, future)
    # A worker killed mid-request 31 s ago left its claim behind.
    _in_flight_claim(body, "k-dead", age=timedelta(seconds=31))
    response = _post(api, body, key="k-dead")
    assert response.status_code == 201, response.json()
    assert _post(api, body, key="k-dead")["Idempotent-Replayed"] == "true"
    assert Booking.objects.count() == 1


def test_a_request_that_outlived_its_lease_rolls_back_instead_of_answering(alice, future):
    body = _body(alice, future)
    request = APIRequestFactory().post(
        "/api/v1/bookings/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-slow"
    )

    def slow_work(data):
        booking_create(
            tenant=alice.tenant,
            property=alice.property,
            guest=alice.guest,
            check_in=future,
            check_out=future + timedelta(days=3),
        )
        # Meanwhile the lease ran out and a repeat took the claim over.
        IdempotencyKey.objects.update(created_at=timezone.now())
        return Response({"reference": "X"}, status=201)

    from rest_framework.parsers import JSONParser
    from rest_framework.request import Request

    from bookings.api.idempotency import idempotent
    from bookings.api.serializers import BookingCreateSerializer

    drf_request = Request(request, parsers=[JSONParser()])
    response = idempotent(
        drf_request,
        serializer=BookingCreateSerializer(data=drf_request.data),
        work=slow_work,
        subject=lambda data: data["guest"]["email"],
    )
    assert response.status_code == 409 and response.data["error"]["code"] == "request_in_progress"
    assert Booking.objects.count() == 0  # its booking was rolled back with it


def test_the_fingerprint_is_the_validated_request_not_the_raw_body(api, alice, future):
    first = _post(api, _body(alice, future, guests=2), key="k-types")
    as_text = _body(alice, future, guests=2)
    as_text["guests"] = "2"
    again = _post(api, as_text, key="k-types")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and Booking.objects.count() == 1


# --- Bad input: a clear 4xx, nothing written ---------------------------------------------------


def test_a_292_character_email_is_a_400_not_a_500(api, alice, future):
    email = "a" * 280 + "@example.test"
    response = _post(api, _body(alice, future, email=email))
    assert response.status_code == 400 and _error(response) == "invalid"
    assert "email" in response.json()["error"]["fields"]["guest"]
    assert _nothing_written() and not Guest.objects.filter(email=email).exists()


@pytest.mark.parametrize(
    ("guest", "field"),
    [({"name": "n" * 201}, "name"), ({"phone": "1" * 33}, "phone")],
)
def test_every_guest_column_limit_is_checked_by_the_api(api, alice, future, guest, field):
    body = _body(alice, future)
    body["guest"].update(guest)
    response = _post(api, body)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]["guest"]
    assert _nothing_written()


def test_a_hundred_thousand_brackets_are_a_4xx_not_a_500(api, settings):
    response = _raw_post(api, "[" * 100_000)  # over the default 64 KiB
    assert response.status_code == 413 and _error(response) == "request_too_large"
    settings.API_MAX_BODY_BYTES = 1_000_000
    response = _raw_post(api, "[" * 100_000)
    assert response.status_code == 400 and _error(response) == "too_deep"


def test_json_nested_past_the_limit_is_a_400(api, alice, future, settings):
    settings.API_MAX_JSON_DEPTH = 16
    body = _body(alice, future)
    body["guest"]["name"] = json.loads("[" * 20 + "]" * 20)
    response = _raw_post(api, json.dumps(body))
    assert response.status_code == 400 and _error(response) == "too_deep"
    assert _nothing_written()


def test_a_body_over_the_size_limit_is_a_413(api, alice, future, settings):
    settings.API_MAX_BODY_BYTES = 4096
    body = _body(alice, future)
    body["padding"] = "x" * 5000
    response = _raw_post(api, json.dumps(body))
    assert response.status_code == 413 and _error(response) == "request_too_large"
    assert _nothing_written()


def test_text_no_database_can_store_is_a_400(api, alice, future):
    raw = json.dumps(_body(alice, future)).replace("Ana Costa", "Ana \\ud800")
    response = _raw_post(api, raw)
    assert response.status_code == 400 and _error(response) == "invalid_text"
    assert _nothing_written()


def test_a_booking_for_9999_12_30_is_refused_beyond_the_horizon(api, alice):
    response = _post(api, _body(alice, date(9999, 12, 30), nights=1))
    assert response.status_code == 400 and _error(response) == "beyond_horizon"
    assert Booking.objects.count() == 0


def test_the_horizon_is_two_years_unless_the_property_sets_its_own(api, alice):
    today = timezone.localdate()
    assert _post(api, _body(alice, today + timedelta(days=725), nights=3)).status_code == 201
    late = _post(api, _body(alice, today + timedelta(days=730), nights=3))
    assert late.status_code == 400 and _error(late) == "beyond_horizon"
    alice.property.booking_horizon_days = 60
    alice.property.save(update_fields=["booking_horizon_days"])
    refused = _post(api, _body(alice, today + timedelta(days=60), nights=2))
    assert refused.status_code == 400 and _error(refused) == "beyond_horizon"


def test_min_and_max_nights_are_the_propertys_and_bind_the_admin_too(api, alice, future):
    alice.property.min_nights, alice.property.max_nights = 3, 5
    alice.property.save(update_fields=["min_nights", "max_nights"])
    short = _post(api, _body(alice, future, nights=2))
    assert short.status_code == 400 and _error(short) == "too_few_nights"
    long = _post(api, _body(alice, future, nights=6))
    assert long.status_code == 400 and _error(long) == "too_many_nights"
    assert _post(api, _body(alice, future, nights=4)).status_code == 201
    with pytest.raises(BookingError) as refused:  # the admin calls the same service
        booking_create(
            tenant=alice.tenant,
            property=alice.property,
            guest=alice.guest,
            check_in=future + timedelta(days=20),
            check_out=future + timedelta(days=21),
            allow_past=True,
        )
    assert refused.value.code == "too_few_nights"


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "2026-13", "x"])
@pytest.mark.parametrize(
    "url",
    ["/admin/bookings/booking/property/{pk}/calendar/", "/admin/bookings/ledgerentry/statement/"],
)
def test_an_unusable_month_in_the_admin_is_a_message_not_a_500(client, alice, month, url):
    client.login(username=alice.manager.username, password=PASSWORD)
    response = client.get(url.format(pk=alice.property.pk), {"month": month})
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert any("is not a month this page can show" in message for message in shown)


def test_an_existing_guests_email_does_not_reveal_or_reach_that_guest(api, alice, future):
    stored = alice.guest
    stored.phone = "+44 7700 900123"
    stored.save(update_fields=["phone"])
    body = _body(alice, future, email=stored.email.upper(), name="Mallory")
    body["guest"]["phone"] = "+1 555 0100"
    response = _post(api, body)
    assert response.status_code == 201
    assert response.json()["guest_name"] == "Mallory" and stored.name not in response.text
    booking = Booking.objects.get(reference=response.json()["reference"])
    # Messages for this booking go to the contact the request gave, not the stored phone.
    assert booking.guest_id != stored.pk and booking.guest.phone == "+1 555 0100"
    stored.refresh_from_db()
    assert (stored.name, stored.phone) == ("Alice Guest", "+44 7700 900123")


def test_a_returning_guest_with_the_same_details_keeps_one_record(api, alice, future):
    first = _post(api, _body(alice, future))
    second = _post(api, _body(alice, future + timedelta(days=10), name="ana costa"))
    assert first.status_code == second.status_code == 201
    assert Guest.objects.filter(email="ana@example.test").count() == 1


# --- Whose a key is, and who can open its stored answer (every kind of caller) ---------
# The endpoint above is only ever reached anonymously; the rules hold for any caller.


def _scope_request(address: str, user: Any = None) -> Request:
    raw = APIRequestFactory().post("/api/v1/bookings/", {}, format="json", REMOTE_ADDR=address)
    request = Request(raw)
    request.user = user or AnonymousUser()
    return request


@pytest.mark.django_db
def test_a_signed_in_users_keys_are_theirs_from_any_address():
    ana, ben = UserFactory.create(username="ana"), UserFactory.create(username="ben")
    here, there = _scope_request("192.0.2.1", ana), _scope_request("198.51.100.7", ana)
    assert client_scope(here, "x@example.test") == client_scope(there, "y@example.test")
    assert client_scope(here) == f"user:{ana.pk}"
    assert client_scope(_scope_request("192.0.2.1", ben)) != client_scope(here)
    assert client_scope(_scope_request("192.0.2.1")) != client_scope(here)  # anonymous


def test_an_anonymous_clients_keys_are_per_address_and_subject():
    scope = client_scope(_scope_request("192.0.2.1"), "ana@example.test")
    assert scope.startswith("anon:")
    assert client_scope(_scope_request("192.0.2.1"), " ANA@example.test ") == scope
    assert client_scope(_scope_request("192.0.2.2"), "ana@example.test") != scope
    assert client_scope(_scope_request("192.0.2.1"), "ben@example.test") != scope
    assert client_scope(_scope_request("192.0.2.1")) != scope
    # The scope is a keyed hash: no address or email in it.
    assert "192.0.2.1" not in scope and "ana" not in scope


def test_a_stored_answer_opens_with_its_key_scope_and_secret_key_only(settings):
    answer = {"reference": "ABCD1234", "token": "guest-secret", "total": "350.00"}
    stored = _seal("key-1", "anon:aaaa", answer)
    assert set(stored) == {"sealed"} and "guest-secret" not in stored["sealed"]
    assert _unseal("key-1", "anon:aaaa", stored) == answer
    for raw_key, scope in (("key-2", "anon:aaaa"), ("key-1", "anon:bbbb")):
        with pytest.raises(InvalidToken):
            _unseal(raw_key, scope, stored)
    settings.SECRET_KEY = "another-installation-" + "x" * 40
    with pytest.raises(InvalidToken):
        _unseal("key-1", "anon:aaaa", stored)
    for not_sealed in (None, "text", {"reference": "ABCD1234"}):
        with pytest.raises(InvalidToken):
            _unseal("key-1", "anon:aaaa", not_sealed)


@pytest.mark.parametrize(("status", "kept"), [(499, True), (500, False), (503, False)])
def test_a_server_error_answer_frees_its_key_for_a_retry(alice, future, status, kept):
    from rest_framework.parsers import JSONParser

    from bookings.api.idempotency import idempotent
    from bookings.api.serializers import BookingCreateSerializer

    raw = APIRequestFactory().post(
        "/api/v1/bookings/", _body(alice, future), format="json", HTTP_IDEMPOTENCY_KEY="k-5xx"
    )
    request = Request(raw, parsers=[JSONParser()])
    response = idempotent(
        request,
        serializer=BookingCreateSerializer(data=request.data),
        work=lambda data: Response({"answer": status}, status=status),
        subject=lambda data: data["guest"]["email"],
    )
    assert response.status_code == status
    assert IdempotencyKey.objects.filter(completed=True).exists() is kept
    assert IdempotencyKey.objects.exists() is kept  # a 5xx: the client may try again
