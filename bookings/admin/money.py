"""Payments, refunds, the ledger and statements; rate overrides."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from bookings import services
from bookings.admin.months import month_from_query
from bookings.admin.reports import ReportsMixin
from bookings.errors import BookingError
from bookings.models import LedgerEntry, Payment, RateOverride, Refund
from bookings.selectors import Statement, ledger_statement
from pms.admin_helpers import ReadOnlyAdminMixin, run_for_each
from pms.models import Property
from tenants.scoping import TenantScopedAdmin, TenantScopedTabularInline, filter_to_tenants


class PaymentInline(ReadOnlyAdminMixin, TenantScopedTabularInline):
    model = Payment
    fields = readonly_fields = (
        "amount",
        "currency",
        "method",
        "provider_reference",
        "status",
        "received_at",
    )
    extra = 0


class RefundInline(ReadOnlyAdminMixin, TenantScopedTabularInline):
    model = Refund
    fields = readonly_fields = (
        "amount",
        "currency",
        "reason",
        "provider_reference",
        "status",
        "completed_at",
    )
    extra = 0


class LedgerEntryInline(ReadOnlyAdminMixin, TenantScopedTabularInline):
    model = LedgerEntry
    fields = readonly_fields = ("entry_date", "kind", "amount", "currency", "description")
    extra = 0


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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
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
        super().clean()
        data = self.cleaned_data
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
class LedgerEntryAdmin(ReportsMixin, ReadOnlyAdminMixin, TenantScopedAdmin):
    """Written only by the accounting handler."""

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

    def get_urls(self) -> list[Any]:
        return [
            path(
                "statement/",
                self.admin_site.admin_view(self.statement_view),
                name="bookings_ledger_statement",
            ),
            path(
                "reports/",
                self.admin_site.admin_view(self.reports_view),
                name="bookings_reports",
            ),
            path(
                "reports/owner/",
                self.admin_site.admin_view(self.owner_statement_view),
                name="bookings_owner_statement",
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
        first = month_from_query(request, date.today())
        property_id = request.GET.get("property", "")
        selected = properties.filter(pk=property_id).first() if property_id.isdigit() else None
        statement = ledger_statement(property=selected, month=first) if selected else None
        if statement and request.GET.get("format") == "csv":
            return _statement_csv(statement)
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
                "entries": statement.entries if statement else [],
                "totals": statement.totals if statement else [],
                "net": statement.net if statement else Decimal("0"),
            },
        )


def _statement_csv(statement: Statement) -> HttpResponse:
    prop, first = statement.property, statement.month
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="statement-{prop.slug}-{first:%Y-%m}.csv"'
    )
    writer = csv.writer(response)
    writer.writerow(["date", "booking", "kind", "description", "amount", "currency"])
    for entry in statement.entries:
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
    for row in statement.totals:
        writer.writerow(["", "", row["kind"], "total", row["total"], prop.currency])
    writer.writerow(["", "", "net", "guest balance movement", statement.net, prop.currency])
    return response
