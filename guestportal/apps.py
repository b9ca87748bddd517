from __future__ import annotations

from django.apps import AppConfig


class GuestPortalConfig(AppConfig):
    name = "guestportal"
    verbose_name = "Guest pages"
