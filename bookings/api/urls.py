from __future__ import annotations

from django.urls import path

from bookings.api import views

# Included by config.urls under api/v1/, in the guest API's one namespace.

urlpatterns = [
    path(
        "tenants/<slug:slug>/properties/",
        views.PropertySearchView.as_view(),
        name="property-search",
    ),
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
        "bookings/<str:reference>/change/",
        views.GuestBookingChangeView.as_view(),
        name="booking-change",
    ),
    path(
        "bookings/<str:reference>/messages/",
        views.GuestMessagesView.as_view(),
        name="booking-messages",
    ),
]
