"""Tenant scoping for the admin (and, later, the API).

Invariant: for a non-superuser, every queryset, foreign-key choice and object
lookup the admin makes for a tenant-owned model is filtered to the tenants the
user is a member of. Objects of other tenants answer 404, never a redirect that
confirms they exist.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import Http404, HttpRequest

from tenants.models import Tenant
from tenants.selectors import tenant_ids_for_user


def is_tenant_owned(model: type[models.Model]) -> bool:
    try:
        field = model._meta.get_field("tenant")
    except Exception:
        return False
    return getattr(field, "related_model", None) is Tenant


def scope_queryset(queryset: models.QuerySet[Any], user: Any) -> models.QuerySet[Any]:
    """Filter ``queryset`` to the user's tenants (superusers: unfiltered)."""
    if getattr(user, "is_superuser", False):
        return queryset
    model = queryset.model
    if model is Tenant:
        return queryset.filter(id__in=tenant_ids_for_user(user))
    if is_tenant_owned(model):
        return queryset.filter(tenant_id__in=tenant_ids_for_user(user))
    return queryset


class TenantScopedAdminMixin:
    """Mix into a ModelAdmin (or inline) of a tenant-owned model."""

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        return scope_queryset(super().get_queryset(request), request.user)  # type: ignore[misc]

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        related = db_field.related_model
        if isinstance(related, type) and (related is Tenant or is_tenant_owned(related)):
            base = kwargs.get("queryset", related._default_manager.all())
            kwargs["queryset"] = scope_queryset(base, request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        related = db_field.related_model
        if isinstance(related, type) and is_tenant_owned(related):
            base = kwargs.get("queryset", related._default_manager.all())
            kwargs["queryset"] = scope_queryset(base, request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Any:
        # Django's related-field filter lists every row of the related model;
        # RelatedOnlyFieldListFilter lists only values in the (scoped) queryset.
        scoped = []
        for item in super().get_list_filter(request):  # type: ignore[misc]
            if isinstance(item, str) and "__" not in item:
                field = self.model._meta.get_field(item)  # type: ignore[attr-defined]
                related = getattr(field, "related_model", None)
                if isinstance(related, type) and (related is Tenant or is_tenant_owned(related)):
                    item = (item, admin.RelatedOnlyFieldListFilter)
            scoped.append(item)
        return scoped

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)  # type: ignore[misc]
        tenant_ids = tenant_ids_for_user(request.user)
        if "tenant" not in initial and len(tenant_ids) == 1:
            initial["tenant"] = tenant_ids[0]
        return initial

    def _get_obj_does_not_exist_redirect(
        self, request: HttpRequest, opts: Any, object_id: str
    ) -> Any:
        # Django redirects to the index with "doesn't exist"; answer 404 so a
        # foreign tenant's id looks exactly like an id that does not exist.
        raise Http404("No such object.")


class TenantScopedAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    pass


class TenantScopedTabularInline(TenantScopedAdminMixin, admin.TabularInline):
    pass
