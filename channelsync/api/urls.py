from __future__ import annotations

from django.urls import path

from channelsync.api.views import ical_export

app_name = "channelsync"

urlpatterns = [
    path("<str:token>.ics", ical_export, name="ical-export"),
]
