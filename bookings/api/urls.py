from __future__ import annotations

from django.urls import path

from automation.api.views import GuestMaintenanceView
from bookings.api import views

app_name = "bookings-api"

urlpatterns = [
    path("properties/<uuid:public_id>/", views.PropertyDetailView.as_view(), name="property"),
    path(
        "properties/<uuid:public_id>/availability/",
        views.AvailabilityView.as_view(),
        name="availability",
    ),
    path("properties/<uuid:public_id>/quote/", views.QuoteView.as_view(), name="quote"),
    path("bookings/", views.BookingCreateView.as_view(), name="booking-create"),
    path("bookings/<str:reference>/", views.GuestBookingView.as_view(), name="booking"),
    path(
        "bookings/<str:reference>/cancel/",
        views.GuestBookingCancelView.as_view(),
        name="booking-cancel",
    ),
    path(
        "bookings/<str:reference>/messages/",
        views.GuestMessagesView.as_view(),
        name="booking-messages",
    ),
    path(
        "bookings/<str:reference>/maintenance/",
        GuestMaintenanceView.as_view(),
        name="booking-maintenance",
    ),
]
