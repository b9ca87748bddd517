"""The "operators" auth group: who may see the queue-health page and the alerts.

Queue health shows worker hostnames, task names and every tenant's queue
volumes, so it is for the people who run the platform, not for tenant roles.
Superusers see it too. The group is kept in step after every ``migrate`` (and
by ``manage.py setup_alert_rules``); add operator accounts to it (with "staff
status" for the admin).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission

OPERATORS_GROUP = "operators"
OPERATOR_PERMISSIONS: tuple[str, ...] = (
    "pms.view_queue_health",
    "pms.view_alertrule",
    "pms.change_alertrule",
    "pms.view_alertincident",
)


def operators_group_sync() -> Group:
    """Create the group or restore its permissions. Idempotent; other permissions an
    administrator added to the group are kept."""
    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    wanted = [tuple(perm.split(".")) for perm in OPERATOR_PERMISSIONS]
    permissions = [
        p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in=[codename for _, codename in wanted]
        )
        if (p.content_type.app_label, p.codename) in wanted
    ]
    group.permissions.add(*permissions)
    return group


def sync_after_migrate(**kwargs: Any) -> None:
    # Runs for every app's post_migrate: the pms permissions exist once pms migrated.
    if kwargs.get("app_config") is not None and kwargs["app_config"].label != "pms":
        return
    operators_group_sync()
