"""Channel sync in the admin: channels with their health, conflicts, the push log,
webhook subscriptions and their delivery log. Every admin is tenant scoped, and
every write is a call to ``channelsync.services``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from channelsync import services
from channelsync.choices import ChannelKind, ChannelStatus, ConflictStatus
from channelsync.models import (
    Channel,
    ChannelUpdate,
    Conflict,
    WebhookDelivery,
    WebhookSubscription,
)
from channelsync.story import channel_story_events
from pms.admin_helpers import ReadOnlyAdminMixin, mask_secret
from pms.story import StorySubject, story
from tenants.scoping import TenantScopedAdmin

STATUS_COLOURS: dict[str, str] = {
    ChannelStatus.OK: "#1e7e34",
    ChannelStatus.NEW: "#6c757d",
    ChannelStatus.ERROR: "#c82333",
    ChannelStatus.STALE: "#d39e00",
    ChannelStatus.PAUSED: "#6c757d",
}


def _valid_port(url: str) -> str:
    """URLField accepts ``:99999``; the fetcher cannot use it: say so at entry."""
    if url:
        try:
            urlsplit(url).port  # noqa: B018 - raises ValueError when out of range
        except ValueError:
            raise forms.ValidationError("The port must be between 1 and 65535.") from None
    return url


class WriteOnlySecretField(forms.CharField):
    """A secret typed in and never shown back: the page never holds the stored value.

    Blank keeps the stored value; anything typed replaces it (that is the rotation
    of a key the remote side issues)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        )
        super().__init__(**kwargs)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class ChannelAdminForm(forms.ModelForm):
    push_api_key = WriteOnlySecretField(required=False, max_length=200, label="Push API key")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("push_api_key")
        if field is not None and self.instance.pk and self.instance.push_api_key:
            field.help_text = (
                f"A key ending in {mask_secret(self.instance.push_api_key)} is stored. "
                "Type a new key to replace it; leave blank to keep it."
            )

    def clean_push_api_key(self) -> str:
        value = self.cleaned_data.get("push_api_key", "")
        return value or (self.instance.push_api_key if self.instance.pk else "")

    class Meta:
        model = Channel
        fields = ["tenant", "property", *services.CHANNEL_EDITABLE_FIELDS]

    def clean_import_url(self) -> str:
        return _valid_port(self.cleaned_data.get("import_url", ""))

    def clean_push_url(self) -> str:
        return _valid_port(self.cleaned_data.get("push_url", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}  # ModelForm.clean returns cleaned_data
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        prop = data.get("property")
        if prop and tenant and prop.tenant_id != tenant.pk:
            self.add_error("property", "This property belongs to another tenant.")
        if data.get("kind") == ChannelKind.PUSH_CHANNEX:
            error = services.channex_listing_error(data.get("push_listing_id", ""))
            if error:
                self.add_error("push_listing_id", f"For Channex the listing id {error}.")
        return data


@admin.register(Channel)
class ChannelAdmin(TenantScopedAdmin):
    form = ChannelAdminForm
    change_form_template = "admin/channelsync/channel/change_form.html"
    list_display = [
        "name",
        "property",
        "kind",
        "status_badge",
        "last_success_at",
        "short_error",
        "consecutive_failures",
        "is_paused",
        "tenant",
    ]
    list_filter = ["status", "kind", "is_paused", "tenant", "property"]
    # Not the import URL: it carries the feed's access token, and a reader who may only
    # see it masked could recover it one character at a time through search.
    search_fields = ["name", "property__name"]
    list_select_related = ["property", "tenant"]
    readonly_fields = [
        "export_url",
        "status",
        "last_attempt_at",
        "last_success_at",
        "last_error",
        "last_error_at",
        "import_warnings",
        "consecutive_failures",
        "next_poll_at",
        "is_paused",
        "created_at",
    ]
    actions = ["sync_now", "full_resync", "pause", "resume", "rotate_export_token", "retire"]

    # What a reader without change rights on the channel sees instead of a secret.
    MASKED_FOR_READERS = {
        "push_api_key": "push_api_key_masked",
        "export_url": "export_url_masked",
        "import_url": "import_url_masked",
    }

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # What happened: the feed's blocks and their events, pushes, conflicts, failures.
        channel = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if channel is not None and self.has_view_permission(request, channel):
            context["story"] = story(
                StorySubject(
                    model="channelsync.channel",
                    object_id=channel.pk,
                    events=channel_story_events(channel.pk),
                )
            )
        return super().change_view(request, object_id, form_url, context)

    def get_readonly_fields(self, request: HttpRequest, obj: Channel | None = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # The imported blocks live on the property: moving a channel would strand
            # them there. Delete (which cancels them) and add a new channel instead.
            readonly += ["tenant", "property"]
            if not self.has_change_permission(request, obj):
                readonly += list(self.MASKED_FOR_READERS.values())
        return readonly

    def get_fields(self, request: HttpRequest, obj: Channel | None = None) -> Any:
        fields = list(super().get_fields(request, obj))
        if obj is None or self.has_change_permission(request, obj):
            return fields
        masked = self.MASKED_FOR_READERS
        return [
            masked.get(name, name) if isinstance(name, str) else name
            for name in fields
            if name not in masked.values()
        ]

    @admin.display(description="push API key")
    def push_api_key_masked(self, obj: Channel) -> str:
        return mask_secret(obj.push_api_key)

    @admin.display(description="export URL")
    def export_url_masked(self, obj: Channel) -> str:
        if not obj.export_token:
            return "-"
        return self.export_url(obj).replace(obj.export_token, mask_secret(obj.export_token))

    @admin.display(description="import URL")
    def import_url_masked(self, obj: Channel) -> str:
        # Feed URLs carry their access token in the query (Airbnb's ?s=...), the path
        # (Google's /private-<token>/basic.ics) or the user part: only the host is shown.
        if not obj.import_url:
            return "-"
        parts = urlsplit(obj.import_url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{parts.scheme}://{parts.hostname or ''}{mask_secret(rest)}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Channel) -> str:
        return format_html(
            '<span style="color:#fff;background:{};padding:2px 8px;border-radius:8px">{}</span>',
            STATUS_COLOURS.get(obj.status, "#6c757d"),
            obj.get_status_display(),
        )

    @admin.display(description="last error")
    def short_error(self, obj: Channel) -> str:
        text = obj.last_error or obj.import_warnings
        if obj.import_warnings and not obj.last_error:
            text = f"warning: {text}"
        return (text[:120] + "...") if len(text) > 120 else text

    @admin.display(description="export URL")
    def export_url(self, obj: Channel) -> str:
        if obj.pk is None:
            return "-"
        return reverse("channelsync:ical-export", kwargs={"token": obj.export_token})

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        if change:
            # Configuration only (health fields are read-only), through the service
            # so a new import URL gets polled.
            data = form.cleaned_data
            services.channel_update(
                channel=obj,
                **{
                    name: data[name]
                    for name in form.changed_data
                    if name in services.CHANNEL_EDITABLE_FIELDS
                },
            )
            return
        data = form.cleaned_data
        saved = services.channel_create(
            tenant=data["tenant"],
            property=data["property"],
            name=data["name"],
            kind=data["kind"],
            import_url=data.get("import_url", ""),
            push_url=data.get("push_url", ""),
            push_api_key=data.get("push_api_key", ""),
            push_listing_id=data.get("push_listing_id", ""),
            poll_interval=data.get("poll_interval"),
            rate_limit_per_second=data.get("rate_limit_per_second") or 5.0,
            rate_limit_burst=data.get("rate_limit_burst") or 5,
        )
        obj.pk = saved.pk
        obj._state.adding = False
        obj.export_token = saved.export_token

    def delete_model(self, request: HttpRequest, obj: Channel) -> None:
        # Its imported blocks are cancelled (with events) before the channel goes.
        services.channel_retire(channel=obj, actor=f"admin:{request.user.pk}")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            services.channel_retire(channel=channel, actor=f"admin:{request.user.pk}")

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Channel], func: Any, verb: str
    ) -> None:
        count = 0
        for channel in queryset:
            func(channel)
            count += 1
        self.message_user(request, f"{verb} {count} channel(s).", messages.SUCCESS)

    @admin.action(description="Sync now", permissions=["change"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        # One submission for the whole selection: 5,000 channels are one insert, admitted
        # within the tenant's share (pms.pipeline.fairness).
        count = services.channels_sync_request(channels=list(queryset))
        self.message_user(request, f"Queued sync of {count} channel(s).", messages.SUCCESS)

    @admin.action(description="Full resync (bulk queue)", permissions=["change"])
    def full_resync(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        count = services.channels_sync_request(channels=list(queryset), full=True)
        self.message_user(request, f"Queued full resync of {count} channel(s).", messages.SUCCESS)

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._each(request, queryset, lambda c: services.channel_pause(channel=c), "Paused")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._each(request, queryset, lambda c: services.channel_resume(channel=c), "Resumed")

    @admin.action(
        description="Retire (cancel its imported blocks, then delete)", permissions=["change"]
    )
    def retire(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        count = blocks = 0
        for channel in queryset:
            blocks += services.channel_retire(channel=channel, actor=f"admin:{request.user.pk}")
            count += 1
        self.message_user(
            request,
            f"Retired {count} channel(s); cancelled {blocks} imported block(s).",
            messages.SUCCESS,
        )

    @admin.action(description="Revoke export URL (new token)", permissions=["change"])
    def rotate_export_token(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        self._each(
            request,
            queryset,
            lambda c: services.channel_export_token_rotate(channel=c),
            "New export URL for",
        )


@admin.register(Conflict)
class ConflictAdmin(TenantScopedAdmin):
    list_display = ["property", "channel", "start", "end", "booking", "status", "detected_at"]
    list_filter = ["status", "tenant", "property"]
    # channel and booking render through their property: select it, or one query per row.
    list_select_related = [
        "property",
        "channel",
        "channel__property",
        "booking",
        "booking__property",
        "tenant",
    ]
    readonly_fields = [
        "tenant",
        "property",
        "channel",
        "block",
        "booking",
        "other_block",
        "start",
        "end",
        "status",
        "detected_at",
        "alerted_at",
        "resolved_at",
        "resolved_by",
    ]
    fields = [*readonly_fields, "resolution_note"]
    actions = ["mark_resolved", "dismiss"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Conflict, form: Any, change: bool) -> None:
        services.conflict_resolve(
            conflict=obj, user=request.user, note=form.cleaned_data.get("resolution_note", "")
        )

    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[Conflict]) -> None:
        for conflict in queryset.filter(status=ConflictStatus.OPEN):
            services.conflict_resolve(
                conflict=conflict, user=request.user, note="Resolved in admin"
            )
        self.message_user(request, "Resolved.", messages.SUCCESS)

    @admin.action(description="Dismiss (not a real conflict)", permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet[Conflict]) -> None:
        for conflict in queryset.filter(status=ConflictStatus.OPEN):
            services.conflict_resolve(
                conflict=conflict, user=request.user, note="Dismissed in admin", dismiss=True
            )
        self.message_user(request, "Dismissed.", messages.SUCCESS)


class OutboundLogAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """A read-only log whose rows go with their channel or subscription.

    Deletable as before (in the row's tenant): deleting a channel or subscription in
    the admin checks the delete permission of every row its deletion cascades to.
    """

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return TenantScopedAdmin.has_delete_permission(self, request, obj)


@admin.register(ChannelUpdate)
class ChannelUpdateAdmin(OutboundLogAdmin):
    list_display = [
        "channel",
        "aggregate_type",
        "aggregate_id",
        "sequence",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = ["status", "tenant", "channel"]
    list_select_related = ["channel", "channel__property"]


EVENT_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


class EventTypesField(forms.Field):
    """A list of event types edited as "a, b" in a text input (the model stores a JSON list)."""

    def prepare_value(self, value: Any) -> Any:
        # The initial value is the stored list: show "a, b", not "['a', 'b']",
        # or the next save would split the list's repr into garbage types.
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(item).strip() for item in value if str(item).strip()]
        text = "" if value in self.empty_values else str(value)
        return [part.strip() for part in text.split(",") if part.strip()]

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        for item in value:
            if item != "*" and not EVENT_TYPE_PATTERN.fullmatch(item):
                raise forms.ValidationError(
                    f"{item!r} is not an event type (like booking.created, or * for all)."
                )

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(initial or []) != self.to_python(data)


class WebhookSubscriptionForm(forms.ModelForm):
    event_types = EventTypesField(
        help_text="Comma-separated event types, e.g. booking.created, block.cancelled; * for all."
    )

    class Meta:
        model = WebhookSubscription
        fields = ["tenant", "url", "event_types"]

    def clean_url(self) -> str:
        return _valid_port(self.cleaned_data.get("url", ""))


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(TenantScopedAdmin):
    form = WebhookSubscriptionForm
    list_display = ["url", "is_active", "consecutive_failures", "disabled_at", "tenant"]
    list_filter = ["is_active", "tenant"]
    readonly_fields = [
        "secret_masked",
        "is_active",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_at",
    ]
    actions = ["send_test", "enable", "rotate_secret"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: WebhookSubscription | None = None
    ) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Its deliveries are its tenant's events: a subscription never changes tenant.
            readonly.append("tenant")
        return readonly

    @admin.display(description="signing secret (Standard Webhooks)")
    def secret_masked(self, obj: WebhookSubscription) -> str:
        # Nobody reads a stored secret back: it is shown once, when created or rotated,
        # in the whsec_ form receivers verify with.
        return mask_secret(obj.signing_secret) if obj.pk else "-"

    def _show_secrets_once(
        self, request: HttpRequest, secrets: list[tuple[WebhookSubscription, str]], title: str
    ) -> HttpResponse:
        response = TemplateResponse(
            request,
            "admin/channelsync/webhooksubscription/secrets_once.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.model._meta,
                "secrets": secrets,
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    def response_add(
        self, request: HttpRequest, obj: WebhookSubscription, post_url_continue: Any = None
    ) -> HttpResponse:
        if IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        return self._show_secrets_once(
            request, [(obj, obj.signing_secret)], "Webhook subscription added"
        )

    @admin.action(description="Rotate the signing secret (shown once)", permissions=["change"])
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]
    ) -> HttpResponse | None:
        rotated = []
        for subscription in queryset:
            secret = services.webhook_subscription_secret_rotate(subscription=subscription)
            self.log_change(request, subscription, "Rotated the signing secret.")
            rotated.append((subscription, secret))
        if not rotated:
            return None
        return self._show_secrets_once(request, rotated, "New signing secrets")

    def save_model(
        self, request: HttpRequest, obj: WebhookSubscription, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            services.webhook_subscription_update(
                subscription=obj,
                **{
                    name: data[name]
                    for name in form.changed_data
                    if name in services.WEBHOOK_SUBSCRIPTION_EDITABLE_FIELDS
                },
            )
            return
        saved = services.webhook_subscription_create(
            tenant=data["tenant"], url=data["url"], event_types=data["event_types"]
        )
        obj.pk, obj.secret = saved.pk, saved.secret
        obj._state.adding = False

    @admin.action(description="Send a test delivery", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset:
            services.webhook_test_send(subscription=subscription)
        self.message_user(request, "Test deliveries queued.", messages.SUCCESS)

    @admin.action(description="Re-enable", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset:
            services.webhook_subscription_enable(subscription=subscription)
        self.message_user(request, "Re-enabled.", messages.SUCCESS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(OutboundLogAdmin):
    list_display = [
        "event_type",
        "subscription",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    ]
    list_filter = ["status", "event_type", "tenant"]
    list_select_related = ["subscription"]
    search_fields = ["event_id", "subscription__url"]
