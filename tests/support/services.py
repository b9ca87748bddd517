"""Tests that need a service the machine may lack: RabbitMQ, a browser.

A test declares it with ``@pytest.mark.needs("rabbitmq")`` (or a module's
``pytestmark``). When the service is missing, the test is skipped, and the run
ends with one line per group saying why and the command that enables it. With
``CI=true`` the same test fails instead: CI provisions every service (``.ci/run``),
so a skip there would hide a missing install step.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from tests.monitoring.browser import skip_reason as browser_missing
from tests.support.broker import rabbitmq_test_url, rabbitmq_unusable


@dataclass(frozen=True)
class ServiceGroup:
    name: str
    title: str
    probe: Callable[[], str | None]  # why the service is unusable, or None
    enable: str  # the command that makes it usable


def _rabbitmq_missing() -> str | None:
    return rabbitmq_unusable(rabbitmq_test_url())


def _rabbitmq_cluster_missing() -> str | None:
    from testkit.rabbitmq_cluster import rabbitmq_available

    return rabbitmq_available()


GROUPS = {
    group.name: group
    for group in (
        ServiceGroup(
            name="rabbitmq",
            title="RabbitMQ",
            probe=_rabbitmq_missing,
            enable=(
                "rabbitmqctl add_vhost pms_test && "
                'rabbitmqctl set_permissions -p pms_test guest ".*" ".*" ".*" '
                "(or set RABBITMQ_TEST_URL)"
            ),
        ),
        ServiceGroup(
            name="rabbitmq-cluster",
            title="RabbitMQ cluster",
            probe=_rabbitmq_cluster_missing,
            enable="apt-get install rabbitmq-server (the tests start their own three nodes)",
        ),
        ServiceGroup(
            name="browser",
            title="browser",
            probe=browser_missing,
            enable="apt-get install chromium (or set CHROMIUM_PATH)",
        ),
    )
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@cache
def unusable(name: str) -> str | None:
    """Why group ``name`` cannot run here (probed once per run), or None."""
    return GROUPS[name].probe()
