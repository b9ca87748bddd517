from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from channelsync.choices import ChannelKind
from channelsync.services import channel_create
from tests.channelsync.support import FlakySmtp


@pytest.fixture
def make_channel(alice: Any) -> Any:
    def make(world: Any = None, **kwargs: Any) -> Any:
        world = world or alice
        defaults: dict[str, Any] = {
            "name": "Airbnb",
            "kind": ChannelKind.AIRBNB,
            "poll_interval": timedelta(minutes=15),
        }
        defaults.update(kwargs)
        return channel_create(tenant=world.tenant, property=world.property, **defaults)

    return make


@pytest.fixture
def flaky_smtp() -> Iterator[FlakySmtp]:
    """A real SMTP server that answers 451 to the next ``fail_next`` messages."""
    server = FlakySmtp().start()
    yield server
    server.stop()
