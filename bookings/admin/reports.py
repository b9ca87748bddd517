"""Admin > Ledger entries > Reports: a month's occupancy, ADR, RevPAR and revenue, per home."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from bookings.admin.months import month_from_query
from bookings.choices import BookingSource
from bookings.models import LedgerEntry
from bookings.reports import MonthReport, month_report, months_trend, owner_statement
from pms.models import Property
from tenants.scoping import filter_to_tenants

SOURCE_LABELS = dict(BookingSource.choices)


def _bars(pairs: list[tuple[str, Decimal]], *, unit: str = "") -> list[dict[str, Any]]:
    """Label, value and bar width (percent of the largest) for a horizontal bar chart."""
    top = max((value for _, value in pairs), default=Decimal("0"))
    return [
        {
            "label": label,
            "value": value,
            "unit": unit,
            "width": float(value * 100 / top) if top else 0.0,
        }
        for label, value in pairs
    ]


def _trend(reports: list[MonthReport]) -> list[dict[str, Any]]:
    top = max((report.revenue for report in reports), default=Decimal("0"))
    return [
        {
            "month": report.month,
            "revenue": report.revenue,
            "occupancy": report.occupancy,
            "height": float(report.revenue * 100 / top) if top else 0.0,
        }
        for report in reports
    ]


def _csv(report: MonthReport) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="report-{report.month:%Y-%m}.csv"'
    writer = csv.writer(response)
    channels = list(report.channels)
    writer.writerow(
        [
            "home",
            "tenant",
            "nights",
            "nights sold",
            "nights blocked",
            "occupancy %",
            "ADR",
            "RevPAR",
            "revenue",
            *[f"revenue {SOURCE_LABELS.get(source, source)}" for source in channels],
            "cancellations",
            "cancellation fees",
        ]
    )
    for home in report.homes:
        writer.writerow(
            [
                home.property.name,
                home.property.tenant.name,
                home.nights,
                home.sold,
                home.blocked,
                home.occupancy,
                home.adr,
                home.revpar,
                home.revenue,
                *[home.by_channel.get(source, Decimal("0.00")) for source in channels],
                home.cancellations,
                home.cancellation_fees,
            ]
        )
    return response


class ReportsMixin:
    """For LedgerEntryAdmin: money figures follow the ledger's view permission per tenant."""

    admin_site: Any

    def reports_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise Http404("No reports.")
        homes = list(
            filter_to_tenants(
                Property.objects.select_related("tenant"),
                self.tenant_ids_for(request, "view"),  # type: ignore[attr-defined]
            ).order_by("tenant__name", "name", "pk")
        )
        property_id = request.GET.get("property", "")
        if property_id.isdigit():
            homes = [home for home in homes if home.pk == int(property_id)]
        first = month_from_query(request, date.today())
        report = month_report(properties=homes, month=first)
        if request.GET.get("format") == "csv":
            return _csv(report)
        busiest = sorted(report.homes, key=lambda home: home.occupancy, reverse=True)
        return TemplateResponse(
            request,
            "admin/bookings/reports.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Report {first:%B %Y}",
                "opts": LedgerEntry._meta,
                "report": report,
                "month": f"{first:%Y-%m}",
                "property_id": property_id,
                "all_homes": filter_to_tenants(
                    Property.objects.all(),
                    self.tenant_ids_for(request, "view"),  # type: ignore[attr-defined]
                ).order_by("name"),
                "occupancy_bars": _bars(
                    [(home.property.name, home.occupancy) for home in busiest[:30]], unit="%"
                ),
                "channel_bars": [
                    {**bar, "source": source}
                    for bar, (source, _) in zip(
                        _bars(
                            [
                                (SOURCE_LABELS.get(source, source), amount)
                                for source, amount in report.channel_revenue()
                            ]
                        ),
                        report.channel_revenue(),
                        strict=True,
                    )
                ],
                "trend": _trend(months_trend(properties=homes, last=first)),
            },
        )

    def owner_statement_view(self, request: HttpRequest) -> HttpResponse:
        """A home's month for its owner: revenue, the manager's fee, cleaning, net. Printable."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise Http404("No statement.")
        property_id = request.GET.get("property", "")
        home = (
            filter_to_tenants(
                Property.objects.select_related("tenant"),
                self.tenant_ids_for(request, "view"),  # type: ignore[attr-defined]
            )
            .filter(pk=int(property_id))
            .first()
            if property_id.isdigit()
            else None
        )
        if home is None:
            raise Http404("No such home.")
        first = month_from_query(request, date.today())
        return TemplateResponse(
            request,
            "admin/bookings/owner_statement.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Owner statement: {home.name}, {first:%B %Y}",
                "opts": LedgerEntry._meta,
                "statement": owner_statement(property=home, month=first),
                "month": f"{first:%Y-%m}",
            },
        )
