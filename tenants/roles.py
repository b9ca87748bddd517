"""What each role may do, per model, in the tenant where the user holds it.

``tenants.permissions.TenantRoleBackend`` answers ``has_perm(perm, obj)`` from
this table and the user's Membership in obj's tenant; the admin
(``tenants.scoping``) narrows rows, choices and actions to the tenants where the
role grants the action. Roles are not Django groups: nothing is copied onto the
user, so a changed or removed membership acts on the next request.
"""

from __future__ import annotations

from tenants.choices import Role

ALL = ("view", "add", "change", "delete")
VIEW = ("view",)

# Channel sync (channelsync app): owners and managers manage, staff view.
CHANNELSYNC_MANAGE: dict[str, tuple[str, ...]] = {
    "channelsync.channel": ALL,
    "channelsync.conflict": ("view", "change"),
    "channelsync.channelupdate": VIEW,
    "channelsync.webhooksubscription": ALL,
    "channelsync.webhookdelivery": VIEW,
}
CHANNELSYNC_VIEW: dict[str, tuple[str, ...]] = {label: VIEW for label in CHANNELSYNC_MANAGE}

# app_label.model -> actions, per role.
# Money and guest communication, managed by owners and managers.
BOOKINGS_MONEY_MANAGE: dict[str, tuple[str, ...]] = {
    "bookings.payment": ("view", "change"),
    "bookings.refund": ("view", "change"),
    "bookings.ledgerentry": VIEW,
    "bookings.rateoverride": ALL,
    "bookings.season": ALL,
    "bookings.propertytax": ALL,
    "bookings.guestmessage": ("view", "add"),
    "automation.outboundmessage": VIEW,
}
BOOKINGS_MONEY_VIEW: dict[str, tuple[str, ...]] = {
    "bookings.payment": VIEW,
    "bookings.guestmessage": VIEW,
    "automation.outboundmessage": VIEW,
}

# Automation: templates, cleaning and maintenance. Cleaners see and update only
# their own cleaning tasks (the admin filters rows by assignee; see automation.admin).
AUTOMATION_MANAGE: dict[str, tuple[str, ...]] = {
    "automation.messagetemplate": ALL,
    "automation.cleaningtask": ("view", "change"),
    "automation.maintenancerequest": ("view", "add", "change"),
    "automation.maintenanceplan": ALL,
}
AUTOMATION_STAFF: dict[str, tuple[str, ...]] = {
    "automation.messagetemplate": VIEW,
    "automation.cleaningtask": VIEW,
    "automation.maintenancerequest": ("view", "add", "change"),
    "automation.maintenanceplan": VIEW,
}

# Fair admission: the tenant's waiting and in-flight bulk work, and its endpoints'
# circuits (a manager closes one once the receiver is fixed).
FAIR_WORK_MANAGE: dict[str, tuple[str, ...]] = {
    "pms.fairworkitem": VIEW,
    "pms.endpointcircuit": ("view", "change"),
}
FAIR_WORK_VIEW: dict[str, tuple[str, ...]] = {
    "pms.fairworkitem": VIEW,
    "pms.endpointcircuit": VIEW,
}

ROLE_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    Role.OWNER: {
        "pms.property": ALL,
        "pms.guest": ALL,
        "bookings.booking": ALL,
        "bookings.block": ("view", "add", "change"),
        "bookings.calendarentry": VIEW,
        "pms.failedtask": ("view", "change"),
        "pms.domainevent": VIEW,
        "tenants.membership": VIEW,
        **FAIR_WORK_MANAGE,
        **CHANNELSYNC_MANAGE,
        **BOOKINGS_MONEY_MANAGE,
        **AUTOMATION_MANAGE,
    },
    Role.MANAGER: {
        "pms.property": ALL,
        "pms.guest": ALL,
        "bookings.booking": ALL,
        "bookings.block": ("view", "add", "change"),
        "bookings.calendarentry": VIEW,
        "pms.failedtask": ("view", "change"),
        "pms.domainevent": VIEW,
        **FAIR_WORK_MANAGE,
        **CHANNELSYNC_MANAGE,
        **BOOKINGS_MONEY_MANAGE,
        **AUTOMATION_MANAGE,
    },
    Role.STAFF: {
        "pms.property": VIEW,
        "pms.guest": VIEW,
        "bookings.booking": VIEW,
        "bookings.block": VIEW,
        "bookings.calendarentry": VIEW,
        "pms.failedtask": ("view", "change"),
        **FAIR_WORK_VIEW,
        **CHANNELSYNC_VIEW,
        **BOOKINGS_MONEY_VIEW,
        **AUTOMATION_STAFF,
    },
    Role.CLEANER: {
        "pms.property": VIEW,
        "automation.cleaningtask": ("view", "change"),
    },
}

# Custom permissions that gate actions rather than model edits.
# The queue-health page is not here: it shows every tenant's queue volumes, worker
# hostnames and task names, so it belongs to the "operators" group (pms.monitoring.operators).
ROLE_EXTRA_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Role.OWNER: ("pms.act_on_failedtask",),
    Role.MANAGER: ("pms.act_on_failedtask",),
    Role.STAFF: ("pms.act_on_failedtask",),
    Role.CLEANER: (),
}
