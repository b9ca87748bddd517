"""Queue monitoring for operators: workers, task stats, samples, alert rules, the watchdog.

Its tables (AlertRule, AlertIncident, QueueSample) are in ``pms.models.monitoring``;
reading depth and age from the broker is the pipeline's (``pms.pipeline.broker_stats``).
"""
