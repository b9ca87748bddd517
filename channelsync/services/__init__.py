"""Channel sync writes, split by domain. Import services from ``channelsync.services``.

- ``channels``: configuration, the polling schedule, health and staleness;
- ``imports``: one iCal poll (fetch, parse, apply as blocks);
- ``conflicts``: imported blocks that overlap a booking or another channel's block;
- ``push`` (+ ``push_adapters``, ``push_channex``): availability updates to push APIs;
- ``webhooks`` (+ ``webhook_events``, the public payload): subscriptions and deliveries;
- ``manager_mail``: the mail a tenant's managers get about any of these.

Services never import tasks: follow-up work is sent by task name after commit
(``pms.pipeline.enqueue``); the names are constants here, and ``channelsync.tasks``
registers each task under its constant.
"""

from channelsync.services.channels import (
    ALERT_STALE_TASK,
    CHANNEL_EDITABLE_FIELDS,
    IMPORT_TASK,
    PUSH_TASK,
    channel_create,
    channel_export_token_rotate,
    channel_imports_submit,
    channel_pause,
    channel_push_submit,
    channel_record_attempt,
    channel_record_failure,
    channel_record_push_success,
    channel_resume,
    channel_retire,
    channel_sync_request,
    channel_unmark_stale,
    channel_update,
    channels_claim_due_polls,
    channels_mark_stale,
    channels_push_submit,
    channels_sync_request,
    stale_channel_alert_send,
    stale_channel_alerts_submit,
)
from channelsync.services.conflicts import (
    ALERT_CONFLICT_TASK,
    conflict_alert_send,
    conflict_claim_alert,
    conflict_resolve,
    conflict_unclaim_alert,
)
from channelsync.services.imports import channel_import_apply, channel_import_run
from channelsync.services.push import (
    channel_updates_defer,
    channel_updates_due_channels,
    channel_updates_push,
    channel_updates_record,
    push_followup_claim,
    update_payload,
)
from channelsync.services.push_channex import channex_listing_error
from channelsync.services.webhook_events import webhook_event_data
from channelsync.services.webhooks import (
    ALERT_WEBHOOK_DISABLED_TASK,
    SEND_WEBHOOK_TASK,
    WEBHOOK_SUBSCRIPTION_EDITABLE_FIELDS,
    webhook_claim_disable_alert,
    webhook_deliveries_due,
    webhook_deliveries_record,
    webhook_deliveries_submit_due,
    webhook_delivery_attempt,
    webhook_disabled_alert_send,
    webhook_subscription_create,
    webhook_subscription_enable,
    webhook_subscription_secret_rotate,
    webhook_subscription_update,
    webhook_test_send,
    webhook_unclaim_disable_alert,
)

__all__ = [
    "ALERT_CONFLICT_TASK",
    "ALERT_STALE_TASK",
    "ALERT_WEBHOOK_DISABLED_TASK",
    "CHANNEL_EDITABLE_FIELDS",
    "IMPORT_TASK",
    "PUSH_TASK",
    "SEND_WEBHOOK_TASK",
    "WEBHOOK_SUBSCRIPTION_EDITABLE_FIELDS",
    "channel_create",
    "channel_export_token_rotate",
    "channel_import_apply",
    "channel_import_run",
    "channel_imports_submit",
    "channel_pause",
    "channel_push_submit",
    "channel_record_attempt",
    "channel_record_failure",
    "channel_record_push_success",
    "channel_resume",
    "channel_retire",
    "channel_sync_request",
    "channel_unmark_stale",
    "channel_update",
    "channel_updates_defer",
    "channel_updates_due_channels",
    "channel_updates_push",
    "channel_updates_record",
    "channels_claim_due_polls",
    "channels_mark_stale",
    "channels_push_submit",
    "channels_sync_request",
    "channex_listing_error",
    "conflict_alert_send",
    "conflict_claim_alert",
    "conflict_resolve",
    "conflict_unclaim_alert",
    "push_followup_claim",
    "stale_channel_alert_send",
    "stale_channel_alerts_submit",
    "update_payload",
    "webhook_claim_disable_alert",
    "webhook_deliveries_due",
    "webhook_deliveries_record",
    "webhook_deliveries_submit_due",
    "webhook_delivery_attempt",
    "webhook_disabled_alert_send",
    "webhook_event_data",
    "webhook_subscription_create",
    "webhook_subscription_enable",
    "webhook_subscription_secret_rotate",
    "webhook_subscription_update",
    "webhook_test_send",
    "webhook_unclaim_disable_alert",
]
