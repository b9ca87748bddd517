"""Shared infrastructure: real servers, workers and the guards around them.

The tenant fixtures (two tenants, Alice's and Bob's, and an outsider) live in
tests/support/tenant_fixtures.py, loaded below as a plugin.

The test suite starts its own broker (a private redis-server, no persistence)
unless TEST_BROKER_URL names one, so broker-stop and flush tests never touch a
developer's data. Workers are real ``celery worker`` processes on the test
database.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import global_settings
from django.db import connection
from django.test import override_settings

from config.celery import app as celery_app
from config.queues import QUEUE_NAMES
from testkit.processes import PrivateRedis
from tests.support import fault_handlers, services
from tests.support.broker import celery_on_broker, configure_celery_for
from tests.support.quiesce import quiesce_database, terminate_other_sessions
from tests.support.servers import ARTIFACTS, CeleryWorker, LivePagesServer, SmtpSink

pytest_plugins = ["tests.support.tenant_fixtures", "tests.support.http_peer"]


# --- Broker and workers ------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _publish_after_commit() -> Iterator[None]:
    """The suite publishes after commit in the committing process (OUTBOX_PUBLISH=commit):
    its workers run without the outbox publisher process beside them, and a test that
    emits an event sees its message sent when its transaction commits. The publisher
    (OUTBOX_PUBLISH=notify, the Procfile's default) has its own tests
    (tests/pms/test_outbox_publisher.py) and runs in the `make run` smoke test."""
    from django.conf import settings

    previous = settings.OUTBOX_PUBLISH
    settings.OUTBOX_PUBLISH = "commit"
    yield
    settings.OUTBOX_PUBLISH = previous


@dataclass
class Broker:
    url: str
    server: PrivateRedis | None

    @property
    def controllable(self) -> bool:
        return self.server is not None


@pytest.fixture(scope="session", autouse=True)
def broker() -> Iterator[Broker]:
    external = os.environ.get("TEST_BROKER_URL")
    server = None
    if external:
        url = external
    else:
        server = PrivateRedis(label="broker", logfile=ARTIFACTS / f"broker-{os.getpid()}.log")
        server.start()
        url = server.url
    # Before anything publishes: the test process and its workers share this broker.
    # Celery reads CELERY_BROKER_URL from the environment before its own config,
    # and the dev-stack launcher exports it, so set both.
    # The settings declared queues for the broker they saw: declare them for this one,
    # as its workers will (quorum queues and publisher confirms on RabbitMQ).
    configure_celery_for(celery_app, url)
    yield Broker(url=url, server=server)
    if server:
        server.stop()


# The tests make users by the hundred (every tenant fixture makes two) and log them in:
# with PBKDF2's 1,000,000 iterations each hash costs ~0.3 s of CPU here. MD5 first, as
# Django's docs advise for tests; the default hashers stay listed, so a hash made by
# another process (a seeded user) still verifies. The settings module is untouched.
TEST_PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    *global_settings.PASSWORD_HASHERS,
]


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=TEST_PASSWORD_HASHERS):
        yield


@pytest.fixture
def own_broker(broker: Broker) -> Iterator[Broker]:
    """A broker of the test's own, for a test without a worker that stops its broker.

    The test process publishes to it for the test; the session worker stays on the
    session broker and never sees the outage. (A worker that sees its broker vanish
    retries after 2, 4, 6... s, kombu's fixed backoff: two such tests in a row left it
    sleeping through the next test's pings, which took it for hung and restarted it.)
    """
    if not broker.controllable:
        pytest.skip("TEST_BROKER_URL names an external broker the tests cannot stop")
    server = PrivateRedis(label="own-broker", logfile=ARTIFACTS / f"broker-own-{os.getpid()}.log")
    server.start()
    try:
        with celery_on_broker(celery_app, server.url):
            yield Broker(url=server.url, server=server)
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _drop_stragglers_before_teardown(
    django_db_setup: Any, django_db_blocker: Any
) -> Iterator[None]:
    """A worker child orphaned by a test must not keep the test database from being dropped."""
    yield
    with django_db_blocker.unblock():
        terminate_other_sessions()


def _is_transactional(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("django_db")
    fixtures = getattr(item, "fixturenames", ())
    return bool(
        (marker and marker.kwargs.get("transaction"))
        or "transactional_db" in fixtures
        or "live_server" in fixtures
    )


# Set once the test's database fixture is up: only then is there a flush to protect.
_DATABASE_READY = pytest.StashKey[bool]()
_DATABASE_FIXTURES = {"_django_db_helper", "transactional_db", "db", "live_server"}


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    result = yield
    if fixturedef.argname in _DATABASE_FIXTURES:
        request.node.stash[_DATABASE_READY] = True
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    # Runs before the test's fixtures are finalised, i.e. before the flush. A test
    # that was skipped (or failed) before it got the database has no flush to guard.
    ready = item.stash.get(_DATABASE_READY, False)
    if ready and _is_transactional(item) and (terminated := quiesce_database()):
        item.warn(pytest.PytestWarning(f"ended busy sessions {terminated} before the flush"))
    return (yield)


# --- Tests that need a service the machine may lack (tests/support/services.py) -----

_SKIPPED_GROUPS = pytest.StashKey[dict[str, int]]()
_RAN_GROUPS = pytest.StashKey[dict[str, int]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SKIPPED_GROUPS] = {}
    config.stash[_RAN_GROUPS] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("needs"):
        for name in marker.args:
            group = services.GROUPS[name]
            reason = services.unusable(name)
            if reason is None:
                ran = item.config.stash[_RAN_GROUPS]
                ran[name] = ran.get(name, 0) + 1
                continue
            if services.in_ci():
                pytest.fail(
                    f"CI=true and the {group.title} tests cannot run: {reason}. "
                    f"CI must provision it: {group.enable}",
                    pytrace=False,
                )
            skipped = item.config.stash[_SKIPPED_GROUPS]
            skipped[name] = skipped.get(name, 0) + 1
            pytest.skip(f"{group.title}: {reason}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line per group of tests that needs a service: ran, or why not and how."""
    for name, count in config.stash[_RAN_GROUPS].items():
        terminalreporter.write_line(f"{services.GROUPS[name].title} tests: {count} ran")
    for name, count in config.stash[_SKIPPED_GROUPS].items():
        group = services.GROUPS[name]
        terminalreporter.write_line(
            f"SKIPPED {count} {group.title} tests: {services.unusable(name)}. "
            f"To run them: {group.enable}",
            yellow=True,
        )


def _database_url() -> str:
    settings = connection.settings_dict
    auth = settings["USER"] or ""
    if settings.get("PASSWORD"):
        auth += f":{settings['PASSWORD']}"
    return f"postgres://{auth}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    server = SmtpSink()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp_server: SmtpSink) -> SmtpSink:
    smtp_server.messages.clear()
    return smtp_server


@pytest.fixture(scope="session")
def worker_env(
    django_db_setup: Any, django_db_blocker: Any, broker: Broker, smtp_server: SmtpSink
) -> dict[str, str]:
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(fault_handlers.EFFECT_TABLE_SQL)
    return {
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker.url,
        "EMAIL_URL": smtp_server.url,
        "STAFF_ALERT_EMAILS": "ops@example.test",
        "OUTBOX_PUBLISH": "commit",  # no publisher process beside the session worker
    }


@pytest.fixture(scope="session")
def celery_worker(worker_env: dict[str, str]) -> Iterator[CeleryWorker]:
    """One worker on every declared queue, for the whole session."""
    worker = CeleryWorker(queues=sorted(QUEUE_NAMES), env=worker_env, concurrency=2, name="all")
    worker.start(celery_app)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def live_pages_server(worker_env: dict[str, str]) -> Iterator[LivePagesServer]:
    """The live pages' server (uvicorn), on the test database, for the whole session."""
    # A low cap on one viewer's pages, so the test of the cap opens few.
    server = LivePagesServer({**worker_env, "LIVE_MAX_PAGES_PER_USER": "5"})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_worker(celery_worker: CeleryWorker, django_db_blocker: Any) -> Iterator[CeleryWorker]:
    """The session worker, with the effect table and control keys clean for this test.

    A worker that died during an earlier test is a failure to look at, not a reason
    for every later test to time out: say so once, and start a fresh one.
    """
    if celery_worker.process is None or celery_worker.process.poll() is not None:
        dead_log = celery_worker.logfile
        celery_worker.start(celery_app)
        pytest.fail(f"the session worker died during an earlier test; see {dead_log}")
    if not celery_worker.responsive(celery_app):
        # Seen after the fault tests (children killed, the broker stopped twice in a few
        # seconds): Celery's prefork main process blocked for good reading a result pipe
        # (celery/concurrency/asynpool.py __read__). A known prefork hazard of the fault
        # tests, not of the test at hand: start a fresh worker, and say so. (A worker
        # still in kombu's reconnect backoff after a broker outage is silent too: tests
        # that stop a broker without needing the worker stop ``own_broker``.)
        hung_log = celery_worker.logfile
        celery_worker.stop()
        celery_worker.start(celery_app)
        warnings.warn(
            f"the session worker stopped answering pings; restarted it (log: {hung_log})",
            pytest.PytestWarning,
            stacklevel=1,
        )
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("TRUNCATE test_effect")
    yield celery_worker
