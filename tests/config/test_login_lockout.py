"""Admin login lockout (django-axes): N failures per username and address, then a cool-down.

Through the real admin login form; the address is REMOTE_ADDR, never a forwarded header.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture(autouse=True)
def lockout(settings):
    # The suite runs with AXES_ENABLED=false (Client.login has no request to give axes).
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def _login(username: str, password: str, *, address: str = "203.0.113.7", **headers: str):
    # WSGI environ defaults; Any, as Client's own keyword arguments share the namespace.
    environ: dict[str, Any] = {"REMOTE_ADDR": address, **headers}
    client = Client(**environ)
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})
    return client, response


def test_three_failures_lock_the_username_from_that_address_even_with_the_right_password(
    superuser,
):
    for _ in range(2):
        _, response = _login("root", "wrong")
        assert response.status_code == 200  # the form again, with its error
    _, third = _login("root", "wrong")
    assert third.status_code == 429
    _, right = _login("root", PASSWORD)
    assert right.status_code == 429  # locked: the password is not even checked

    # The same username from another address, and another username from this one, are not.
    _, elsewhere = _login("root", PASSWORD, address="198.51.100.9")
    assert elsewhere.status_code == 302


def test_another_username_from_the_locked_address_can_log_in(superuser, alice):
    for _ in range(3):
        _login("root", "wrong")
    alice.manager.is_staff = True
    alice.manager.save(update_fields=["is_staff"])
    _, response = _login(alice.manager.username, PASSWORD)
    assert response.status_code == 302


def test_a_rotating_forwarded_for_header_does_not_dodge_the_lockout(superuser):
    for index in range(3):
        _login("root", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{index}")
    _, response = _login("root", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


def test_the_lockout_ends_after_the_cool_down(superuser):
    for _ in range(3):
        _login("root", "wrong")
    # (A try during the lock counts as one more failure and restarts the cool-down.)
    with time_machine.travel(timezone.now() + timedelta(minutes=16), tick=False):
        assert _login("root", PASSWORD)[1].status_code == 302


def test_a_success_resets_the_failure_count(superuser):
    for _ in range(2):
        _login("root", "wrong")
    assert _login("root", PASSWORD)[1].status_code == 302
    for _ in range(2):
        _login("root", "wrong")
    assert _login("root", PASSWORD)[1].status_code == 302


def test_superusers_see_the_lockouts_and_tenant_managers_do_not(superuser, alice, bob, client):
    for _ in range(3):
        _login("bob-manager", "wrong")
    client.force_login(superuser)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert b"bob-manager" in page.content and b"203.0.113.7" in page.content

    for world in (alice, bob):
        world.manager.is_staff = True
        world.manager.save(update_fields=["is_staff"])
        manager = Client()
        manager.force_login(world.manager)
        assert manager.get("/admin/axes/accessattempt/").status_code == 403
        assert b"/admin/axes/" not in manager.get("/admin/").content
