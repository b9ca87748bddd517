"""Payments, refunds, the ledger and statements; rate overrides."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from bookings import services
from bookings.admin.months import month_from_query
from bookings.errors import BookingError
from bookings.models import LedgerEntry, Payment, RateOverride, Refund
from pms.admin_helpers import run_for_each
from pms.models import Property
from tenants.scoping import TenantScopedAdmin, TenantScopedTabularInline, filter_to_tenants


class ReadOnlyInline(TenantScopedTabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ["amount", "currency", "method", "provider_reference", "status", "received_at"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["amount", "currency", "reason", "provider_reference", "status", "completed_at"]
    readonly_fields = fields


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fields = ["entry_date", "kind", "amount", "currency", "description"]
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(TenantScopedAdmin):
    list_display = [
        "booking",
        "amount",
        "currency",
        "method",
        "provider_reference",
        "status",
        "created_at",
        "received_at",
        "tenant",
    ]
    list_filter = ["status", "method", "tenant"]
    search_fields = ["provider_reference", "booking__reference", "booking__guest__name"]
    list_select_related = ["booking", "tenant"]
    readonly_fields = [
        "booking",
        "amount",
        "currency",
        "method",
        "provider",
        "provider_reference",
        "status",
        "received_at",
        "tenant",
    ]
    actions = ["mark_received"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # requested by the booking flow; extra requests through services

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Mark selected payments as received", permissions=["change"])
    def mark_received(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        actor = f"admin:{request.user.get_username()}"
        run_for_each(
            self,
            request,
            queryset,
            lambda payment: services.payment_mark_received(payment=payment, actor=actor),
            refusals=(BookingError,),
            done_message="{count} payment(s) marked received.",
        )


@admin.register(Refund)
class RefundAdmin(TenantScopedAdmin):
    list_display = [
        "booking",
        "amount",
        "currency",
        "reason",
        "provider_reference",
        "status",
        "created_at",
        "completed_at",
        "tenant",
    ]
    list_filter = ["status", "tenant"]
    search_fields = ["provider_reference", "booking__reference", "booking__guest__name"]
    list_select_related = ["booking", "tenant"]
    readonly_fields = [
        "booking",
        "amount",
        "currency",
        "reason",
        "provider_reference",
        "status",
        "completed_at",
        "tenant",
    ]
    actions = ["mark_completed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # refunds follow from cancellations (bookings.services.refunds_reconcile)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Mark selected refunds as sent to the guest", permissions=["change"])
    def mark_completed(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        actor = f"admin:{request.user.get_username()}"
        run_for_each(
            self,
            request,
            queryset,
            lambda refund: services.refund_mark_completed(refund=refund, actor=actor),
            refusals=(BookingError,),
            done_message="{count} refund(s) marked sent.",
        )


class RateOverrideForm(forms.ModelForm):
    class Meta:
        model = RateOverride
        fields = ["tenant", "property", "date", "nightly_rate", "note"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if (
            data.get("property")
            and data.get("tenant")
            and data["property"].tenant_id != data["tenant"].pk
        ):
            self.add_error("property", "This property belongs to another tenant.")
        return data


@admin.register(RateOverride)
class RateOverrideAdmin(TenantScopedAdmin):
    form = RateOverrideForm
    list_display = ["property", "date", "nightly_rate", "note", "tenant"]
    list_filter = ["property", "tenant"]
    date_hierarchy = "date"
    list_select_related = ["property", "tenant"]
    search_fields = ["note", "property__name"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(TenantScopedAdmin):
    list_display = [
        "entry_date",
        "property",
        "booking",
        "kind",
        "amount",
        "currency",
        "description",
        "tenant",
    ]
    list_filter = ["kind", "property", "tenant", "entry_date"]
    date_hierarchy = "entry_date"
    search_fields = ["booking__reference", "description"]
    list_select_related = ["property", "booking", "tenant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written only by the accounting handler

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [
            path(
                "statement/",
                self.admin_site.admin_view(self.statement_view),
                name="bookings_ledger_statement",
            ),
            *super().get_urls(),
        ]

    def statement_view(self, request: HttpRequest) -> HttpResponse:
        """A property's monthly statement: entries, totals per kind; CSV with ?format=csv."""
        if not self.has_view_permission(request):
            raise Http404("No statement.")
        # Only properties of the tenants where the role sees the ledger.
        properties = filter_to_tenants(
            Property.objects.select_related("tenant"), self.tenant_ids_for(request, "view")
        )
        today = date.today()
        first = month_from_query(request, today)
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        property_id = request.GET.get("property", "")
        selected = properties.filter(pk=property_id).first() if property_id.isdigit() else None
        entries = (
            LedgerEntry.objects.filter(
                property=selected, entry_date__gte=first, entry_date__lt=following
            )
            .select_related("booking")
            .order_by("entry_date", "pk")
            if selected
            else LedgerEntry.objects.none()
        )
        totals = list(
            entries.order_by().values("kind").annotate(total=Sum("amount")).order_by("kind")
        )
        net = sum((row["total"] for row in totals), Decimal("0"))
        if selected and request.GET.get("format") == "csv":
            return _statement_csv(selected, first, entries, totals, net)
        return TemplateResponse(
            request,
            "admin/bookings/statement.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Statement {selected.name if selected else ''} {first:%B %Y}".strip(),
                "opts": LedgerEntry._meta,
                "properties": properties,
                "selected": selected,
                "month": f"{first:%Y-%m}",
                "entries": entries,
                "totals": totals,
                "net": net,
            },
        )


def _statement_csv(
    prop: Property, first: date, entries: Any, totals: list[dict[str, Any]], net: Decimal
) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="statement-{prop.slug}-{first:%Y-%m}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(["date", "booking", "kind", "description", "amount", "currency"])
    for entry in entries:
        writer.writerow(
            [
                entry.entry_date,
                entry.booking.reference,
                entry.kind,
                entry.description,
                entry.amount,
                entry.currency,
            ]
        )
    writer.writerow([])
    for row in totals:
        writer.writerow(["", "", row["kind"], "total", row["total"], prop.currency])
    writer.writerow(["", "", "net", "guest balance movement", net, prop.currency])
    return response
