from __future__ import annotations

from django.urls import path

from automation.api.views import GuestMaintenanceView

# Included by config.urls under api/v1/, in the guest API's one namespace.
urlpatterns = [
    path(
        "bookings/<str:reference>/maintenance/",
        GuestMaintenanceView.as_view(),
        name="booking-maintenance",
    ),
]
