from __future__ import annotations

from django.apps import AppConfig


class AutomationConfig(AppConfig):
    """Cleaning, maintenance, guest messages and reminders (issue 5 fills it)."""

    name = "automation"
    default_auto_field = "django.db.models.BigAutoField"
