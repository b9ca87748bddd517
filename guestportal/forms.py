"""The guest pages' forms. Labels and errors are translated; the services decide the rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from automation.choices import MaintenancePriority
from bookings.services.guest_access import MAX_MESSAGE_LENGTH


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class ChangeStayForm(forms.Form):
    check_in = forms.DateField(label=_("Arrival"), widget=DateInput())
    check_out = forms.DateField(label=_("Departure"), widget=DateInput())
    guests = forms.IntegerField(label=_("Guests"), min_value=1, max_value=99)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        check_in, check_out = data.get("check_in"), data.get("check_out")
        if check_in and check_out and check_out <= check_in:
            self.add_error("check_out", _("Departure must be after arrival."))
        return data


class MessageForm(forms.Form):
    body = forms.CharField(
        label=_("Your message"),
        max_length=MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class ReportForm(forms.Form):
    PRIORITIES = [
        (MaintenancePriority.NORMAL, _("It can wait a day")),
        (MaintenancePriority.URGENT, _("Urgent: it stops us using the home")),
    ]

    title = forms.CharField(label=_("What is wrong?"), max_length=200)
    description = forms.CharField(
        label=_("Details"), required=False, max_length=5000, widget=forms.Textarea({"rows": 4})
    )
    priority = forms.ChoiceField(
        label=_("How urgent is it?"),
        choices=PRIORITIES,
        initial=MaintenancePriority.NORMAL,
        widget=forms.RadioSelect,
    )
    photo = forms.ImageField(
        label=_("A photo (optional)"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
    )

    def clean_photo(self) -> Any:
        photo = self.cleaned_data.get("photo")
        limit = settings.GUEST_PHOTO_MAX_BYTES
        if photo and photo.size > limit:
            raise forms.ValidationError(
                _("The photo is larger than %(limit)s.") % {"limit": filesizeformat(limit)}
            )
        return photo
