from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kombu.exceptions import OperationalError

from config.celery import app
from config.queues import QUEUE_NAMES, broker_is_amqp, broker_settings, worker_groups
from pms.tasks import probe_echo

ROOT = Path(__file__).resolve().parents[2]


def test_every_declared_queue_is_consumed_by_its_procfile_worker_group() -> None:
    procfile = (ROOT / "Procfile").read_text()
    consumed: dict[str, set[str]] = {}
    for line in procfile.splitlines():
        name, _, command = line.partition(":")
        match = re.search(r"worker -Q (\S+)", command)
        if match:
            consumed[name] = set(match.group(1).split(","))
    assert consumed == {group: set(queues) for group, queues in worker_groups().items()}
    assert set().union(*consumed.values()) == QUEUE_NAMES


def test_architecture_queues_are_all_declared() -> None:
    assert {
        "bookings",
        "messaging",
        "payments",
        "accounting",
        "automation",
        "channelsync",
        "bulk",
        "fallback",
        "default",
        "messaging_batch",
        "outbound",
    } == QUEUE_NAMES


def test_a_misspelt_queue_fails_at_publish_instead_of_creating_a_queue() -> None:
    with pytest.raises((KeyError, OperationalError)) as excinfo:
        probe_echo.apply_async(queue="bokings")
    assert "bokings" in str(excinfo.value)


def test_celery_is_configured_for_reliability() -> None:
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_create_missing_queues is False
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    # Off unless asked for (CELERY_TASK_EVENTS): Flower enables them while it watches.
    assert not conf.worker_send_task_events and not conf.task_send_sent_event
    if broker_is_amqp(conf.broker_url):
        assert conf.broker_transport_options == {"confirm_publish": True}
        assert all(q.queue_arguments == {"x-queue-type": "quorum"} for q in conf.task_queues)
    else:
        # A retry waiting for its countdown must not be redelivered by Redis meanwhile.
        assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit + 600


def test_the_broker_decides_queue_types_and_transport_options() -> None:
    rabbit = broker_settings("amqp://guest:guest@rabbit.example:5672/pms", visibility_timeout=99)
    assert rabbit["broker_transport_options"] == {"confirm_publish": True}
    assert rabbit["worker_detect_quorum_queues"] is True
    assert rabbit["broker_native_delayed_delivery_queue_type"] == "quorum"
    assert {q.name for q in rabbit["task_queues"]} == QUEUE_NAMES
    for queue in rabbit["task_queues"]:
        assert queue.queue_arguments == {"x-queue-type": "quorum"}
        # Native delayed delivery (countdown retries kept in the broker) needs topic exchanges.
        assert queue.exchange.type == "topic" and queue.routing_key == queue.name
        assert not queue.max_priority  # quorum queues: no per-message priorities
    assert broker_is_amqp("pyamqp://h//") and broker_is_amqp("amqps://h//")
    assert broker_is_amqp("amqp://a//;amqp://b//")

    redis = broker_settings("redis://127.0.0.1:6379/0", visibility_timeout=99)
    assert redis["broker_transport_options"]["visibility_timeout"] == 99
    assert redis["broker_transport_options"]["queue_order_strategy"] == "round_robin"
    assert "confirm_publish" not in redis["broker_transport_options"]
    for queue in redis["task_queues"]:
        assert queue.queue_arguments is None and queue.exchange.type == "direct"


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_secret_key_with_debug_off_stops_with_one_clear_line() -> None:
    result = _manage("check", DJANGO_DEBUG="false")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: DJANGO_SECRET_KEY is not set")


def test_deploy_check_is_clean_in_a_production_configuration() -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 20 + "production-grade-secret-key-9f8e7d6c5b4a",
        ALLOWED_HOSTS="pms.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def _setting(name: str, **env: str) -> str:
    """The value of a setting in a fresh process whose environment sets only ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != name}
    result = subprocess.run(
        # The settings module alone (what Django's settings are made from), not a whole
        # `manage.py shell`: the same value, in a tenth of the time.
        [sys.executable, "-c", f"import config.settings as s; print(repr(s.{name}))"],
        cwd=ROOT,
        env={
            **clean,
            "DJANGO_SECRET_KEY": "x" * 20 + "production-grade-secret-key-9f8e7d6c5b4a",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_metrics_trust_loopback_defaults_to_debug() -> None:
    assert _setting("METRICS_TRUST_LOOPBACK", DJANGO_DEBUG="false") == "False"
    assert _setting("METRICS_TRUST_LOOPBACK", DJANGO_DEBUG="true") == "True"
    explicit = _setting(
        "METRICS_TRUST_LOOPBACK", DJANGO_DEBUG="false", METRICS_TRUST_LOOPBACK="true"
    )
    assert explicit == "True"


def test_a_configured_sms_gateway_is_used_without_naming_its_backend() -> None:
    """With the console default, setting SMS_GATEWAY_URL alone sent nothing (found by the
    fault runs' SMS receiver: 200 SMS "sent", none received)."""
    assert _setting("SMS_BACKEND", SMS_GATEWAY_URL="") == "'automation.sms.ConsoleSmsBackend'"
    used = _setting("SMS_BACKEND", SMS_GATEWAY_URL="https://sms.example.test/send")
    assert used == "'automation.sms.HttpGatewaySmsBackend'"


SENTINELS = "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/pms/2"


def test_a_sentinel_url_configures_the_cache_and_the_broker() -> None:
    cache = _setting("CACHES", REDIS_URL=SENTINELS, CELERY_BROKER_URL="")
    assert "config.redis_sentinel.SentinelPool" in cache and f"[{SENTINELS!r}]" in cache
    broker = _setting("CELERY_BROKER_URL", REDIS_URL=SENTINELS, CELERY_BROKER_URL="")
    assert broker == repr(
        ";".join(f"sentinel://127.0.0.1:{port}/2" for port in (26379, 26380, 26381))
    )
    options = _setting("CELERY_BROKER_TRANSPORT_OPTIONS", REDIS_URL=SENTINELS, CELERY_BROKER_URL="")
    assert "'master_name': 'pms'" in options


def test_a_wrong_sentinel_url_stops_with_one_readable_line() -> None:
    result = _manage("check", DJANGO_DEBUG="true", REDIS_URL="redis+sentinel://127.0.0.1:26379")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "REDIS_URL: the monitored primary's name is missing" in lines[0]
