"""Small admin building blocks shared by every app's admin (model-free)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.admin.options import InlineModelAdmin
from django.db.models import Model
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


class ReadOnlyAdminMixin:
    """A log or a ledger in the admin (a model admin or an inline): seen, never edited here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@dataclass
class _AdminExtension:
    inlines: list[type[InlineModelAdmin[Any, Any]]] = field(default_factory=list)
    actions: dict[str, Callable[..., Any]] = field(default_factory=dict)


_extensions: defaultdict[str, _AdminExtension] = defaultdict(_AdminExtension)


def admin_extend(
    model: type[Model],
    *,
    inlines: Sequence[type[InlineModelAdmin[Any, Any]]] = (),
    actions: Sequence[Callable[..., Any]] = (),
) -> None:
    """Add inlines and actions to another app's admin of ``model`` without importing it.

    Call from the adding app's admin module. That admin (an ``ExtensibleAdminMixin``)
    shows the inlines after its own and offers an action where its ``actions`` names it
    (by the function's name). Calling twice adds nothing twice.
    """
    extension = _extensions[model._meta.label_lower]
    extension.inlines += [inline for inline in inlines if inline not in extension.inlines]
    extension.actions.update({action.__name__: action for action in actions})


class ExtensibleAdminMixin:
    """A model admin that other apps extend with ``admin_extend`` (read at each request,
    so the order in which the apps' admin modules are imported does not matter)."""

    model: type[Model]

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[InlineModelAdmin[Any, Any]]]:
        own = super().get_inlines(request, obj)  # type: ignore[misc]
        return [*own, *_extensions[self.model._meta.label_lower].inlines]

    def get_action(self, action: Callable[..., Any] | str) -> Any:
        if isinstance(action, str) and not hasattr(type(self), action):
            added = _extensions[self.model._meta.label_lower].actions.get(action)
            if added is not None:
                return super().get_action(added)  # type: ignore[misc]
        return super().get_action(action)  # type: ignore[misc]
