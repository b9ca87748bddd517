"""A viewer's rights changed: their live pages reconnect and are checked again.

A membership added, changed or removed, a user changed (deactivated, staff flag,
groups, permissions) or signed out: the live server closes that user's connections
with a "check again" code, and each page reconnects as whoever its cookie now says.
These notices are the fast path: the live server also reads every member's rights
before each render (pms.live.hub), so a change made without a signal (a queryset
``update()``) or a notice lost with Redis still acts at the group's next render.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save

from pms.pipeline.announce import ACCESS, announce
from tenants.models import Membership


def _membership_changed(sender: Any, instance: Membership, **kwargs: Any) -> None:
    announce(tenant_id=None, topic=ACCESS, user_id=instance.user_id)


def _user_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    # A sign-in saves only last_login: the rights are the same, the pages stay.
    if kwargs.get("update_fields") == frozenset({"last_login"}):
        return
    if not kwargs.get("created") and instance.pk is not None:
        announce(tenant_id=None, topic=ACCESS, user_id=instance.pk)


def _users_groups_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A user's groups or permissions changed, from either side of the relation."""
    if kwargs.get("action") not in ("post_add", "post_remove", "post_clear", "pre_clear"):
        return
    if kwargs.get("reverse"):  # group.user_set.add(...): the users are pk_set
        user_ids = set(kwargs.get("pk_set") or ())
        if kwargs.get("action") == "pre_clear":
            user_ids = set(instance.user_set.values_list("pk", flat=True))
    else:
        user_ids = {instance.pk}
    for user_id in user_ids:
        announce(tenant_id=None, topic=ACCESS, user_id=user_id)


def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        announce(tenant_id=None, topic=ACCESS, user_id=user.pk)


def connect() -> None:
    user_model = get_user_model()
    post_save.connect(_membership_changed, sender=Membership, dispatch_uid="live-membership-save")
    post_delete.connect(
        _membership_changed, sender=Membership, dispatch_uid="live-membership-delete"
    )
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="live-user-save")
    for through in (user_model.groups.through, user_model.user_permissions.through):
        m2m_changed.connect(
            _users_groups_changed, sender=through, dispatch_uid=f"live-{through.__name__}"
        )
    user_logged_out.connect(_signed_out, dispatch_uid="live-signed-out")
