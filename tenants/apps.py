from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_role_groups(**kwargs: object) -> None:
    from tenants.services import role_groups_sync

    role_groups_sync()


class TenantsConfig(AppConfig):
    name = "tenants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Infrastructure, not domain: keep role groups in step with the code's table.
        # No sender filter: permissions of apps migrated after this one must exist.
        post_migrate.connect(_sync_role_groups, dispatch_uid="tenants.role_groups_sync")
