"""The Celery application, wired the cookiecutter-django way."""

from __future__ import annotations

import logging
import os

from celery import Celery, signals

from config.log_redaction import RedactTokens
from pms.pipeline.broker_guard import install as install_broker_guard
from pms.pipeline.log_context import install_log_record_factory

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before any logging is configured: every record carries tenant_id (log formats use it).
install_log_record_factory()
# A broker outage must not kill a worker holding unacked messages (see pms.pipeline.broker_guard).
install_broker_guard()

app = Celery("pms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_tokens_in_celery_logs(logger: logging.Logger, **kwargs: object) -> None:
    """Celery replaces the root logger's handlers (and so Django's redacting console)
    in workers and beat: guest tokens stay out of their log lines too."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactTokens) for f in handler.filters):
            handler.addFilter(RedactTokens())
