"""The live hub's bookkeeping: which groups a notice renders, and that every open page
ends with its group's last render.

The render is replaced by a stand-in here (slow, and counting), the only way to make a
page join while a render is under way every time, and to count renders per group;
tests/pms/test_live_pages.py renders for real.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from pms.live import hub as hub_module
from pms.live.access import Access
from pms.live.hub import Seat
from pms.live.pages import LivePage

CALENDAR = LivePage("admin:bookings_multi_calendar", frozenset({"booking"}), ("calendar",))


class Page:
    def __init__(self) -> None:
        self.regions: dict[str, str] = {}
        self.closed: Any = None

    async def push(self, message: str) -> None:
        self.regions.update(json.loads(message)["regions"])

    async def close(self, code: Any = None, reason: Any = None) -> None:
        self.closed = code


@pytest.fixture
def fake_renders(monkeypatch, settings):
    """What the page would show now (``data``), and the tenants each render was for."""
    settings.LIVE_DEBOUNCE_SECONDS = 0.01
    settings.LIVE_MIN_INTERVAL_SECONDS = 0.05
    state: dict[str, Any] = {"data": {"calendar": "before the booking"}, "renders": []}

    def render(group: Any, user_ids: set[int]) -> tuple[set[int], dict[str, str]]:
        time.sleep(0.2)
        state["renders"].append(sorted(group.access.tenant_ids))
        return set(), dict(state["data"])

    monkeypatch.setattr(hub_module, "_checked_render", render)
    monkeypatch.setattr(hub_module.Hub, "_start", lambda self: None)  # no Redis thread
    return state


async def _join(hub: hub_module.Hub, member: Page, *, tenant: int, user: int = 1) -> None:
    access = Access(user_id=user, key=("rights in", tenant), tenant_ids=frozenset({tenant}))
    await hub.join(
        member,
        seat=Seat(user_id=user, session_key="s"),
        page=CALENDAR,
        kwargs={},
        path="/admin/bookings/booking/calendar/",
        query="",
        host="h",
        access=access,
    )


def test_a_page_joining_during_a_render_gets_the_whole_page(fake_renders):
    async def scenario() -> list[Page]:
        hub = hub_module.Hub()
        first, second, third = Page(), Page(), Page()
        await _join(hub, first, tenant=1)
        await asyncio.sleep(0.05)  # the first render is under way
        await _join(hub, second, tenant=1, user=2)
        await asyncio.sleep(1.0)  # both renders done (the same page twice)
        assert [first.regions, second.regions] == [{"calendar": "before the booking"}] * 2
        fake_renders["data"] = {"calendar": "with the booking"}
        hub.notice({"tenant": 1, "topic": "booking"})
        await asyncio.sleep(0.05)
        await _join(hub, third, tenant=1, user=3)
        await asyncio.sleep(1.5)
        return [first, second, third]

    pages = asyncio.run(scenario())
    assert [p.regions.get("calendar") for p in pages] == ["with the booking"] * 3


def test_a_notice_renders_only_the_groups_of_its_tenant(fake_renders):
    async def scenario() -> None:
        hub = hub_module.Hub()
        await _join(hub, Page(), tenant=1)
        await _join(hub, Page(), tenant=2, user=2)
        await asyncio.sleep(1.0)  # the two join renders
        fake_renders["renders"].clear()
        hub.notice({"tenant": 1, "topic": "booking"})
        hub.notice({"tenant": 1, "topic": "payment"})  # not a topic of the calendar
        await asyncio.sleep(1.0)

    asyncio.run(scenario())
    assert fake_renders["renders"] == [[1]]


def test_a_page_that_stops_reading_does_not_hold_its_group_back(fake_renders, settings):
    settings.LIVE_SEND_TIMEOUT_SECONDS = 0.3

    class Stalled(Page):
        async def push(self, message: str) -> None:
            await asyncio.sleep(3600)  # a closed laptop lid: the socket never drains

    async def scenario() -> tuple[Page, Page]:
        hub = hub_module.Hub()
        stalled, reading = Stalled(), Page()
        await _join(hub, stalled, tenant=1)
        await _join(hub, reading, tenant=1, user=2)
        await asyncio.sleep(0.6)
        fake_renders["data"] = {"calendar": "with the booking"}
        hub.notice({"tenant": 1, "topic": "booking"})
        await asyncio.sleep(1.0)
        return stalled, reading

    stalled, reading = asyncio.run(scenario())
    assert reading.regions == {"calendar": "with the booking"}
    assert stalled.closed == hub_module.CLOSE_RECHECK
