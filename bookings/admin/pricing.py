"""Pricing rules in the admin: seasons and taxes, inline on the property and on their own.

Like rate overrides: a row belongs to its property's tenant (the inline sets it from
the property; the standalone form refuses a property of another tenant), and the
scoping mixins keep each tenant to its own rows and choices.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet

from bookings.models import PropertyTax, Season
from pms.admin_helpers import admin_extend
from pms.models import Property
from tenants.scoping import TenantScopedAdmin, TenantScopedTabularInline


class _PropertyTenantForm(forms.ModelForm):
    """A standalone form of a property's row: the property must be of the row's tenant."""

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


class SeasonForm(_PropertyTenantForm):
    class Meta:
        model = Season
        fields = [
            "tenant",
            "property",
            "name",
            "start",
            "end",
            "nightly_rate",
            "weekend_rate",
            "min_nights",
            "max_nights",
        ]


class PropertyTaxForm(_PropertyTenantForm):
    class Meta:
        model = PropertyTax
        fields = ["tenant", "property", "name", "kind", "rate"]


class PropertyRowsFormSet(BaseInlineFormSet):
    """Inline rows take the property's tenant (the form has no tenant field)."""

    def add_fields(self, form: Any, index: int | None) -> None:
        super().add_fields(form, index)
        # Before the form validates: the season-overlap constraint is checked then.
        form.instance.tenant_id = self.instance.tenant_id

    def save_new(self, form: Any, commit: bool = True) -> Any:
        form.instance.tenant_id = self.instance.tenant_id
        return super().save_new(form, commit=commit)


class SeasonFormSet(PropertyRowsFormSet):
    def clean(self) -> None:
        """No two seasons of the property overlap, saved or submitted together.

        The exclusion constraint's validation cannot do it here: Django leaves an
        inline's foreign key (the property) out of the model validation of its forms.
        The constraint stays the last word.
        """
        super().clean()
        submitted: list[tuple[Any, str, date, date]] = []
        in_forms = set()
        for form in self.forms:
            if form.instance.pk is not None:
                in_forms.add(form.instance.pk)
            data = getattr(form, "cleaned_data", None) or {}
            start, end = data.get("start"), data.get("end")
            if not data.get("DELETE") and start and end:
                submitted.append((form, data.get("name", ""), start, end))
        spans: list[tuple[str, date, date]] = []
        if self.instance.pk is not None:
            spans += (
                Season.objects.filter(property_id=self.instance.pk)
                .exclude(pk__in=in_forms)
                .values_list("name", "start", "end")
            )
        for form, name, start, end in submitted:
            clash = next((other for other, s, e in spans if start < e and s < end), None)
            spans.append((name, start, end))
            if clash is not None:
                form.add_error(
                    "start", f"This season overlaps another season of this property ({clash})."
                )


class SeasonInline(TenantScopedTabularInline):
    model = Season
    formset = SeasonFormSet
    fields = ["name", "start", "end", "nightly_rate", "weekend_rate", "min_nights", "max_nights"]
    extra = 0


class PropertyTaxInline(TenantScopedTabularInline):
    model = PropertyTax
    formset = PropertyRowsFormSet
    fields = ["name", "kind", "rate"]
    extra = 0


admin_extend(Property, inlines=[SeasonInline, PropertyTaxInline])


@admin.register(Season)
class SeasonAdmin(TenantScopedAdmin):
    form = SeasonForm
    list_display = [
        "name",
        "property",
        "start",
        "end",
        "nightly_rate",
        "weekend_rate",
        "min_nights",
        "max_nights",
        "tenant",
    ]
    list_filter = ["property", "tenant"]
    date_hierarchy = "start"
    list_select_related = ["property", "tenant"]
    search_fields = ["name", "property__name"]


@admin.register(PropertyTax)
class PropertyTaxAdmin(TenantScopedAdmin):
    form = PropertyTaxForm
    list_display = ["name", "property", "kind", "rate", "tenant"]
    list_filter = ["kind", "property", "tenant"]
    list_select_related = ["property", "tenant"]
    search_fields = ["name", "property__name"]
