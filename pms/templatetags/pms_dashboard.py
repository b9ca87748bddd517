from __future__ import annotations

from typing import Any

from django import template

from pms.dashboard import DashboardPanel, dashboard_panels

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard(context: Any) -> list[DashboardPanel]:
    """The admin index's panels for the signed-in user (none for someone without a role)."""
    return dashboard_panels(context["request"])
