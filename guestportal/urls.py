from __future__ import annotations

from django.urls import path

from guestportal import views

app_name = "guest"

urlpatterns = [
    path("<str:reference>/", views.BookingPage.as_view(), name="booking"),
    path("<str:reference>/cancel/", views.CancelPage.as_view(), name="cancel"),
    path("<str:reference>/change/", views.ChangePage.as_view(), name="change"),
    path("<str:reference>/messages/", views.MessagesPage.as_view(), name="messages"),
    path("<str:reference>/report/", views.ReportPage.as_view(), name="report"),
]
