"""Small admin building blocks shared by every app's admin (model-free)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect


def mask_secret(value: str) -> str:
    """A secret as a reader may see it: its last 4 characters (enough to tell two apart)."""
    if not value:
        return "-"
    return f"{'•' * 8}{value[-4:]}" if len(value) > 8 else "•" * 8


def run_for_each(
    model_admin: Any,
    request: HttpRequest,
    objects: Iterable[Any],
    call: Callable[[Any], Any],
    *,
    refusals: tuple[type[Exception], ...],
    done_message: str,
) -> int:
    """Apply a service to each selected object; a refusal is a warning, not an error page.

    ``done_message`` is formatted with ``count``.
    """
    done = 0
    for obj in objects:
        try:
            call(obj)
            done += 1
        except refusals as exc:
            model_admin.message_user(request, f"{obj}: {exc}", messages.WARNING)
    if done:
        model_admin.message_user(request, done_message.format(count=done), messages.SUCCESS)
    return done


class ServiceRefusalsAsMessagesMixin:
    """Turn a service refusal raised while saving into a message and a redirect back.

    Form validation catches rules up front; this covers the race where the rule
    breaks between validation and save (another booking won the dates): the user
    sees why, nothing is lost, and it is never a 500.
    """

    service_refusals: tuple[type[Exception], ...] = ()

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        except self.service_refusals as exc:
            self.message_user(request, str(exc), messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())
