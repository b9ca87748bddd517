"""Queue monitoring for operators: broker depth and age, workers, task stats, samples, alerts.

Model-free modules; the three models (AlertRule, AlertIncident, QueueSample) live in
``pms.monitoring.models`` and are imported by ``pms.models`` so they belong to the app.
"""
