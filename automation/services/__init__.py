"""Automation services (writes): outbound messages, guest messages, cleaning, maintenance."""

from automation.services.cleaning import (
    CleaningError,
    cleaning_runs_claim_due,
    cleaning_runs_purge,
    cleaning_task_assign,
    cleaning_task_note,
    cleaning_task_reconcile,
    cleaning_task_transition,
)
from automation.services.guest_messages import (
    guest_messages_cancel,
    guest_messages_reconcile,
    guest_template_exists,
    template_message_key,
    template_send_at,
)
from automation.services.maintenance import (
    MaintenanceError,
    maintenance_plans_open_due,
    maintenance_plans_open_tenant,
    maintenance_plans_submit_due,
    maintenance_request_assign,
    maintenance_request_create,
    maintenance_request_transition,
    maintenance_request_update,
)
from automation.services.notify import manager_emails
from automation.services.outbound import (
    guest_link_email,
    outbound_message_draft,
    outbound_message_queue,
    outbound_message_send,
    outbound_messages_claim_due,
    outbound_messages_queue,
)

__all__ = [
    "CleaningError",
    "MaintenanceError",
    "cleaning_runs_claim_due",
    "cleaning_runs_purge",
    "cleaning_task_assign",
    "cleaning_task_note",
    "cleaning_task_reconcile",
    "cleaning_task_transition",
    "guest_link_email",
    "guest_messages_cancel",
    "guest_messages_reconcile",
    "guest_template_exists",
    "maintenance_plans_open_due",
    "maintenance_plans_open_tenant",
    "maintenance_plans_submit_due",
    "maintenance_request_assign",
    "maintenance_request_create",
    "maintenance_request_transition",
    "maintenance_request_update",
    "manager_emails",
    "outbound_message_draft",
    "outbound_message_queue",
    "outbound_message_send",
    "outbound_messages_claim_due",
    "outbound_messages_queue",
    "template_message_key",
    "template_send_at",
]
