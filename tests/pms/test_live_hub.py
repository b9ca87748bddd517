"""The live hub's bookkeeping: every open page ends with the group's last render.

The render is replaced by a slow stand-in here, the only way to make a page join
while a render is under way every time (tests/pms/test_live_pages.py renders for real).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pms.live import hub as hub_module
from pms.live.access import Access
from pms.live.pages import LivePage


class Page:
    def __init__(self) -> None:
        self.regions: dict[str, str] = {}

    async def push(self, message: str) -> None:
        self.regions.update(json.loads(message)["regions"])

    async def close(self, code: Any = None, reason: Any = None) -> None:
        raise AssertionError(f"closed with {code}")


@pytest.fixture
def slow_renders(monkeypatch, settings):
    settings.LIVE_DEBOUNCE_SECONDS = 0.01
    settings.LIVE_MIN_INTERVAL_SECONDS = 0.05
    data = {"calendar": "before the booking"}  # what the page would show now

    def render(user_id: int, group: Any) -> dict[str, str]:
        import time

        time.sleep(0.2)
        return dict(data)

    monkeypatch.setattr(hub_module, "_render_as", render)
    monkeypatch.setattr(hub_module.Hub, "_start", lambda self: None)  # no Redis thread
    return data


def test_a_page_joining_during_a_render_gets_the_whole_page(slow_renders):
    page = LivePage("admin:index", frozenset({"booking"}), ("calendar",))
    access = Access(user_id=1, key=("same rights",), tenant_ids=frozenset({1}))

    async def scenario() -> list[Page]:
        hub = hub_module.Hub()
        first, second, third = Page(), Page(), Page()

        async def join(member: Page) -> None:
            await hub.join(
                member,
                user_id=1,
                page=page,
                kwargs={},
                path="/admin/",
                query="",
                host="h",
                access=access,
            )

        await join(first)
        await asyncio.sleep(0.05)  # the first render is under way
        await join(second)
        await asyncio.sleep(0.6)  # both renders done (the same page twice)
        assert [first.regions, second.regions] == [{"calendar": "before the booking"}] * 2
        slow_renders["calendar"] = "with the booking"
        hub.notice({"tenant": 1, "topic": "booking"})
        await asyncio.sleep(0.05)
        await join(third)
        await asyncio.sleep(0.8)
        return [first, second, third]

    pages = asyncio.run(scenario())
    assert [p.regions.get("calendar") for p in pages] == ["with the booking"] * 3
