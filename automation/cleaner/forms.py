from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from automation.choices import MaintenancePriority
from automation.services.cleaning import MAX_NOTES_LENGTH


class NotesForm(forms.Form):
    notes = forms.CharField(
        label="Notes",
        required=False,
        max_length=MAX_NOTES_LENGTH,
        widget=forms.Textarea({"rows": 3}),
    )


class ProblemForm(forms.Form):
    title = forms.CharField(label="What is wrong?", max_length=200)
    description = forms.CharField(
        label="Details", required=False, max_length=5000, widget=forms.Textarea({"rows": 3})
    )
    urgent = forms.BooleanField(
        label="Urgent: the next guest cannot stay like this", required=False
    )
    photo = forms.ImageField(
        label="Photo",
        required=False,
        widget=forms.ClearableFileInput({"accept": "image/*", "capture": "environment"}),
    )

    def clean_photo(self) -> Any:
        photo = self.cleaned_data.get("photo")
        if photo and photo.size > settings.GUEST_PHOTO_MAX_BYTES:
            limit = filesizeformat(settings.GUEST_PHOTO_MAX_BYTES)
            raise forms.ValidationError(f"The photo is larger than {limit}.")
        return photo

    @property
    def priority(self) -> str:
        return (
            MaintenancePriority.URGENT
            if self.cleaned_data.get("urgent")
            else MaintenancePriority.HIGH
        )
