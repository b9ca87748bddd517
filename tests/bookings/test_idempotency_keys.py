"""Whose an Idempotency-Key is, and who can open the answer stored under it.

The API tests (test_guest_api.py, test_api_perimeter.py) book through the endpoint,
which only anonymous guests reach; here the two rules the module states are checked
for every kind of caller: a key belongs to its client (a signed-in user wherever they
connect from, else the address and the subject), and the stored answer opens only with
its own key, its own scope and this installation's SECRET_KEY.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import InvalidToken
from django.contrib.auth.models import AnonymousUser
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from bookings.api.idempotency import _seal, _unseal, client_scope
from tests.factories import UserFactory


def _request(address: str, user: Any = None) -> Request:
    raw = APIRequestFactory().post("/api/v1/bookings/", {}, format="json", REMOTE_ADDR=address)
    request = Request(raw)
    request.user = user or AnonymousUser()
    return request


@pytest.mark.django_db
def test_a_signed_in_users_keys_are_theirs_from_any_address():
    ana, ben = UserFactory.create(username="ana"), UserFactory.create(username="ben")
    here, there = _request("192.0.2.1", ana), _request("198.51.100.7", ana)
    assert client_scope(here, "x@example.test") == client_scope(there, "y@example.test")
    assert client_scope(here) == f"user:{ana.pk}"
    assert client_scope(_request("192.0.2.1", ben)) != client_scope(here)
    assert client_scope(_request("192.0.2.1")) != client_scope(here)  # anonymous


def test_an_anonymous_clients_keys_are_per_address_and_subject():
    scope = client_scope(_request("192.0.2.1"), "ana@example.test")
    assert scope.startswith("anon:")
    assert client_scope(_request("192.0.2.1"), " ANA@example.test ") == scope
    assert client_scope(_request("192.0.2.2"), "ana@example.test") != scope
    assert client_scope(_request("192.0.2.1"), "ben@example.test") != scope
    assert client_scope(_request("192.0.2.1")) != scope
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
