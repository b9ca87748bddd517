"""Tenant scoping for the admin: rows, choices, objects and actions, per role and tenant.

Invariants, for a non-superuser:
- every queryset the admin lists or looks objects up in holds only rows of the
  tenants where the user's role grants viewing that model; other rows answer 404,
  never a redirect that confirms they exist;
- every permission asked about an object is asked of the role in *that object's*
  tenant (``tenants.permissions``): a view-only role gets a read-only page and a
  403 on any write, even when the same user manages another tenant;
- an action acts only on the selected rows of the tenants where the role grants
  the action's permission; the others are left alone, and the user is told;
- foreign-key choices (selects and autocompletes) offer rows of the object's own
  tenant when editing, and of the tenants where the role grants "add" when adding;
  a user foreign key offers only members of those tenants.
Superusers see and do everything, except that a user choice still follows the
object's tenant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename, get_user_model
from django.db import models
from django.http import Http404, HttpRequest

from tenants.models import Tenant
from tenants.permissions import tenant_ids_granting, tenant_of
from tenants.selectors import tenant_ids_for_user

# Set by get_form / get_formset while the admin builds a form: (model, object or parent).
_FORM_TARGET = "_tenant_scoping_form_target"


def is_tenant_owned(model: type[models.Model]) -> bool:
    try:
        field = model._meta.get_field("tenant")
    except Exception:
        return False
    return getattr(field, "related_model", None) is Tenant


def filter_to_tenants(
    queryset: models.QuerySet[Any], tenant_ids: Iterable[int] | None
) -> models.QuerySet[Any]:
    """Rows of ``tenant_ids`` (None: no filter). Models without a tenant pass unchanged."""
    if tenant_ids is None:
        return queryset
    model = queryset.model
    if model is Tenant:
        return queryset.filter(id__in=list(tenant_ids))
    if is_tenant_owned(model):
        return queryset.filter(tenant_id__in=list(tenant_ids))
    return queryset


def scope_queryset(
    queryset: models.QuerySet[Any], user: Any, *, perms: Iterable[str] | None = None
) -> models.QuerySet[Any]:
    """Filter ``queryset`` to the user's tenants (superusers: unfiltered).

    With ``perms``, only the tenants where the user's role grants one of them.
    """
    if getattr(user, "is_superuser", False):
        return queryset
    tenant_ids = tenant_ids_for_user(user) if perms is None else tenant_ids_granting(user, perms)
    return filter_to_tenants(queryset, tenant_ids)


def model_perm(action: str, model: type[models.Model]) -> str:
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def _autocomplete_source(request: HttpRequest) -> type[models.Model] | None:
    """The model whose form asks, when ``request`` is the admin's autocomplete view."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.url_name != "autocomplete":
        return None
    try:
        return apps.get_model(request.GET["app_label"], request.GET["model_name"])
    except (KeyError, LookupError, ValueError):
        return None


class TenantScopedAdminMixin:
    """Mix into a ModelAdmin (or inline) of a tenant-owned model."""

    model: type[models.Model]
    opts: Any
    # Action permissions beyond view/add/change/delete: name -> "app_label.codename".
    extra_permissions: dict[str, str] = {}

    # --- which permission, which tenants -----------------------------------------

    def perms_for(self, name: str) -> tuple[str, ...]:
        """The permissions that allow ``name`` ("view" is also allowed by "change")."""
        if name in self.extra_permissions:
            return (self.extra_permissions[name],)
        if name == "view":
            return (model_perm("view", self.model), model_perm("change", self.model))
        return (model_perm(name, self.model),)

    def tenant_ids_for(self, request: HttpRequest, *names: str) -> list[int] | None:
        """Tenants where the user may do one of ``names`` here (None: all, a superuser)."""
        if request.user.is_superuser:
            return None
        return tenant_ids_granting(
            request.user, [perm for name in names for perm in self.perms_for(name)]
        )

    def may(self, request: HttpRequest, name: str, obj: Any = None) -> bool:
        """May the user do ``name``: on ``obj`` (its tenant's role), or anywhere (no obj)."""
        return any(request.user.has_perm(perm, obj) for perm in self.perms_for(name))

    # --- permissions: per object, from the role in the object's tenant -----------
    # For an inline, ``obj`` is the parent object, which is in the same tenant.

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.opts.auto_created:
            return super().has_view_permission(request, obj)  # type: ignore[misc]
        return self.may(request, "view", obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.opts.auto_created:
            return super().has_change_permission(request, obj)  # type: ignore[misc]
        return self.may(request, "change", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.opts.auto_created:
            return super().has_delete_permission(request, obj)  # type: ignore[misc]
        return self.may(request, "delete", obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.opts.auto_created:
            return super().has_add_permission(request, obj)  # type: ignore[misc]
        # A new row of a model admin: allowed if some tenant allows it (the tenant
        # choices then narrow it). A new inline row: in the parent's tenant.
        return self.may(request, "add", obj if obj is not None and obj.pk else None)

    # --- rows ----------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> models.QuerySet[Any]:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return filter_to_tenants(queryset, self.tenant_ids_for(request, "view"))

    def get_search_results(
        self, request: HttpRequest, queryset: models.QuerySet[Any], search_term: str
    ) -> tuple[models.QuerySet[Any], bool]:
        queryset, distinct = super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        source = _autocomplete_source(request)
        if source is not None and not request.user.is_superuser:
            # An autocomplete offers choices for the asking form: rows of the tenants
            # where that form may add or change, not every tenant this list shows.
            queryset = filter_to_tenants(
                queryset,
                tenant_ids_granting(
                    request.user, [model_perm("add", source), model_perm("change", source)]
                ),
            )
        return queryset, distinct

    # --- actions ---------------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        return {
            name: (self._tenant_scoped_action(func), name, description)
            for name, (func, _, description) in actions.items()
        }

    def _tenant_scoped_action(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # An action without declared permissions writes: it needs "change".
        names = tuple(getattr(func, "allowed_permissions", None) or ("change",))

        @functools.wraps(func)
        def scoped(modeladmin: Any, request: HttpRequest, queryset: Any) -> Any:
            tenant_ids = modeladmin.tenant_ids_for(request, *names)
            allowed = filter_to_tenants(queryset, tenant_ids)
            if tenant_ids is not None and (skipped := queryset.count() - allowed.count()):
                modeladmin.message_user(
                    request,
                    f"{skipped} selected row(s) left alone: your role in their tenant "
                    "does not allow this action.",
                    messages.WARNING,
                )
            return func(modeladmin, request, allowed)

        return scoped

    # --- forms: choices follow the object's tenant -----------------------------------

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        setattr(request, _FORM_TARGET, obj)
        return super().get_form(request, obj, change, **kwargs)  # type: ignore[misc]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        setattr(request, _FORM_TARGET, obj)  # inlines: the parent object
        return super().get_formset(request, obj, **kwargs)  # type: ignore[misc]

    def form_tenant_ids(self, request: HttpRequest, *, for_superuser: bool = False) -> Any:
        """Tenants the form being built may point at (None: any).

        Editing: the object's own tenant. Adding: the tenants where the role grants
        "add" (a superuser: any, unless ``for_superuser`` and the object is known).
        """
        obj = getattr(request, _FORM_TARGET, None)
        tenant_id = tenant_of(obj) if obj is not None and obj.pk is not None else None
        if tenant_id is not None:
            # The admin let this user open the object (or its parent): its tenant only.
            return None if request.user.is_superuser and not for_superuser else [tenant_id]
        if request.user.is_superuser:
            return None
        return self.tenant_ids_for(request, "add")

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        related = db_field.related_model
        if isinstance(related, type) and (related is Tenant or is_tenant_owned(related)):
            base = kwargs.get("queryset", related._default_manager.all())
            kwargs["queryset"] = filter_to_tenants(base, self.form_tenant_ids(request))
        elif related is get_user_model() and "queryset" not in kwargs:
            kwargs["queryset"] = self.member_choices(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def member_choices(
        self, request: HttpRequest, *, roles: tuple[str, ...] | None = None
    ) -> models.QuerySet[Any]:
        """People a user foreign key may name: members of the form's tenant(s)."""
        tenant_ids = self.form_tenant_ids(request, for_superuser=True)
        memberships = apps.get_model("tenants", "Membership").objects.all()
        if tenant_ids is not None:
            memberships = memberships.filter(tenant_id__in=tenant_ids)
        if roles:
            memberships = memberships.filter(role__in=roles)
        user_model = apps.get_model(settings.AUTH_USER_MODEL)
        return user_model._default_manager.filter(pk__in=memberships.values("user_id")).order_by(
            user_model.USERNAME_FIELD
        )

    def formfield_for_manytomany(
        self, db_field: models.ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> Any:
        related = db_field.related_model
        if isinstance(related, type) and is_tenant_owned(related):
            base = kwargs.get("queryset", related._default_manager.all())
            kwargs["queryset"] = filter_to_tenants(base, self.form_tenant_ids(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Any:
        # Django's related-field filter lists every row of the related model;
        # RelatedOnlyFieldListFilter lists only values in the (scoped) queryset.
        scoped = []
        for item in super().get_list_filter(request):  # type: ignore[misc]
            if isinstance(item, str) and "__" not in item:
                field = self.model._meta.get_field(item)
                related = getattr(field, "related_model", None)
                if isinstance(related, type) and (related is Tenant or is_tenant_owned(related)):
                    item = (item, admin.RelatedOnlyFieldListFilter)
            scoped.append(item)
        return scoped

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)  # type: ignore[misc]
        tenant_ids = self.tenant_ids_for(request, "add")
        if "tenant" not in initial and tenant_ids is not None and len(tenant_ids) == 1:
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
