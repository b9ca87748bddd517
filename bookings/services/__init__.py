"""Booking writes, split by domain. Import services from ``bookings.services``."""

from bookings.services.blocks import (
    block_cancel,
    block_create,
    block_update,
    block_upsert,
)
from bookings.services.guest_access import (
    guest_message_post,
    guest_token_issue,
    guest_token_live,
    guest_token_resolve,
    guest_tokens_revoke,
)
from bookings.services.lifecycle import (
    booking_cancel,
    booking_check_in,
    booking_check_out,
    booking_confirm,
    booking_create,
    booking_decline,
    booking_mark_no_show,
    booking_modify,
    booking_set_external_reference,
    booking_validate_stay,
    guest_booking_status,
)
from bookings.services.payments import (
    payment_mark_received,
    payment_request,
    payments_settle,
    refund_mark_completed,
    refunds_reconcile,
)
from bookings.services.previews import (
    CancellationPreview,
    ChangePreview,
    booking_cancel_preview,
    booking_change_preview,
    booking_paid,
    guest_may_change,
)
from bookings.services.requests import booking_request_expire, booking_requests_submit_expired

__all__ = [
    "CancellationPreview",
    "ChangePreview",
    "block_cancel",
    "block_create",
    "block_update",
    "block_upsert",
    "booking_cancel",
    "booking_cancel_preview",
    "booking_change_preview",
    "booking_check_in",
    "booking_check_out",
    "booking_confirm",
    "booking_create",
    "booking_decline",
    "booking_mark_no_show",
    "booking_modify",
    "booking_paid",
    "booking_request_expire",
    "booking_requests_submit_expired",
    "booking_set_external_reference",
    "booking_validate_stay",
    "guest_booking_status",
    "guest_may_change",
    "guest_message_post",
    "guest_token_issue",
    "guest_token_live",
    "guest_token_resolve",
    "guest_tokens_revoke",
    "payment_mark_received",
    "payment_request",
    "payments_settle",
    "refund_mark_completed",
    "refunds_reconcile",
]
