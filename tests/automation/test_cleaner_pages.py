"""The cleaner's phone pages: their own tasks only, start and done, notes, a problem's photo."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.utils import timezone
from PIL import Image

from automation.choices import CleaningStatus, MaintenancePriority
from automation.models import CleaningTask, MaintenanceRequest
from automation.services import cleaning_task_reconcile
from bookings.services import booking_create
from tenants.choices import Role
from tenants.services import membership_grant
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _task(world, cleaner, *, days_ago: int = 2):
    today = timezone.localdate()
    booking = booking_create(
        tenant=world.tenant,
        property=world.property,
        guest=world.guest,
        check_in=today - timedelta(days=days_ago),
        check_out=today,
        allow_past=True,
    )
    with transaction.atomic():
        task = cleaning_task_reconcile(booking_id=booking.pk)
    assert task is not None
    CleaningTask.objects.filter(pk=task.pk).update(assignee=cleaner)
    task.refresh_from_db()
    return task


def _cleaner(world, name: str):
    user = UserFactory.create(username=name)
    membership_grant(user=user, tenant=world.tenant, role=Role.CLEANER)
    return user


def _png() -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(buffer, format="PNG")
    return SimpleUploadedFile("stain.png", buffer.getvalue(), content_type="image/png")


def test_a_cleaner_sees_only_their_own_tasks(client, alice, bob):
    ana = _cleaner(alice, "ana-cleaner")
    other = _cleaner(alice, "ben-cleaner")
    mine = _task(alice, ana)
    bobs_cleaner = _cleaner(bob, "bob-cleaner")
    theirs = _task(bob, bobs_cleaner)
    client.force_login(ana)
    html = client.get("/clean/").content.decode()
    assert f'id="task-{mine.pk}"' in html and f'id="task-{theirs.pk}"' not in html
    assert client.get(f"/clean/{theirs.pk}/").status_code == 404
    client.force_login(other)
    assert client.get(f"/clean/{mine.pk}/").status_code == 404
    assert client.post(f"/clean/{mine.pk}/start/").status_code == 404


def test_start_then_done_from_the_phone(client, alice):
    ana = _cleaner(alice, "ana-cleaner")
    task = _task(alice, ana)
    client.force_login(ana)
    assert client.post(f"/clean/{task.pk}/start/").status_code == 302
    task.refresh_from_db()
    assert task.status == CleaningStatus.STARTED and task.started_at is not None
    page = client.post(f"/clean/{task.pk}/done/", follow=True)
    assert "Done. Thank you!" in page.content.decode()
    task.refresh_from_db()
    assert task.status == CleaningStatus.DONE
    again = client.post(f"/clean/{task.pk}/start/", follow=True)
    assert "cannot become started" in again.content.decode()  # a message, not a 500


def test_notes_are_saved_and_a_problem_with_a_photo_reaches_the_manager(client, alice):
    ana = _cleaner(alice, "ana-cleaner")
    task = _task(alice, ana)
    client.force_login(ana)
    client.post(f"/clean/{task.pk}/", {"notes": "Two towels missing"})
    task.refresh_from_db()
    assert task.notes == "Two towels missing"
    response = client.post(
        f"/clean/{task.pk}/problem/",
        {"title": "Wine stain on the sofa", "urgent": "on", "photo": _png()},
    )
    assert response.status_code == 302
    request = MaintenanceRequest.objects.get(property=alice.property)
    assert request.reporter == ana and request.booking_id == task.booking_id
    assert request.priority == MaintenancePriority.URGENT and request.photo.name


def test_a_fake_photo_is_a_form_error_and_anonymous_visitors_sign_in_first(alice):
    ana = _cleaner(alice, "ana-cleaner")
    task = _task(alice, ana)
    anonymous = Client()
    assert anonymous.get("/clean/")["Location"].startswith("/admin/login/?next=/clean/")
    client = Client(enforce_csrf_checks=True)
    client.force_login(ana)
    assert client.post(f"/clean/{task.pk}/start/").status_code == 403  # no CSRF token
    client = Client()
    client.force_login(ana)
    fake = SimpleUploadedFile("x.png", b"not an image", content_type="image/png")
    response = client.post(f"/clean/{task.pk}/problem/", {"title": "x", "photo": fake})
    assert response.status_code == 400 and "Upload a valid image" in response.content.decode()
    assert not MaintenanceRequest.objects.exists()
