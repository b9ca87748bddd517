"""The live server's fan-in and fan-out: one Redis subscription, one render per group.

Every open page joins the group of its path, query and viewer's rights (access). A
notice marks the groups it concerns; a marked group is rendered once, after
``LIVE_DEBOUNCE_SECONDS`` (so a burst of notices costs one render) and at most once
per ``LIVE_MIN_INTERVAL_SECONDS``, and the regions that changed go to every member.
A page that joins gets the group's last render at once, and the group is rendered
again (what changed between its load and its connection); every group is also
rendered at least every ``LIVE_REFRESH_SECONDS`` (a lost notice heals).

Notices arrive on a thread that reads Redis pub/sub with the pipeline's client (it
follows a Sentinel failover) and hands them to the event loop. When the subscription
breaks, every group is rendered again once it is back: notices sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model

from pms.live.access import Access, sees_tenant
from pms.live.pages import LivePage, concerns
from pms.live.render import NotShown, render_regions
from pms.pipeline.announce import ACCESS, LIVE_CHANNEL
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

# Close codes the page's script understands (pms/static/pms/live.js).
CLOSE_RECHECK = 4001  # the viewer's rights changed: reconnect, and be checked again
CLOSE_NOT_SHOWN = 4003  # the page is not (or no longer) shown to this viewer
CLOSE_TOO_MANY = 4029  # the viewer has LIVE_MAX_PAGES_PER_USER pages open already


class Member(Protocol):
    async def push(self, message: str) -> None: ...

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


@dataclass(eq=False)
class Group:
    page: LivePage
    kwargs: Mapping[str, Any]
    path: str
    query: str
    host: str
    access: Access
    members: dict[Member, int] = field(default_factory=dict)  # member -> its user id
    shown: dict[str, str] = field(default_factory=dict)  # the last render, per region
    version: int = 0  # renders that changed something
    has: dict[Member, int] = field(default_factory=dict)  # the version each member was sent
    rendered_at: float = 0.0
    dirty: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def refresh_seconds(self) -> float:
        return self.page.refresh_seconds or settings.LIVE_REFRESH_SECONDS


class Hub:
    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], Group] = {}
        self.renders = 0  # how many renders this process has made (the bench reads it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._closing: set[asyncio.Future[None]] = set()

    # -- members -------------------------------------------------------------------
    async def join(
        self,
        member: Member,
        *,
        user_id: int,
        page: LivePage,
        kwargs: Mapping[str, Any],
        path: str,
        query: str,
        host: str,
        access: Access,
    ) -> Group | None:
        """Add ``member`` to its page's group; None (and closed) past the viewer's cap.

        Each distinct page is a render of its own, so one viewer's pages are capped.
        """
        open_pages = sum(
            1 for group in self.groups.values() for uid in group.members.values() if uid == user_id
        )
        if open_pages >= settings.LIVE_MAX_PAGES_PER_USER:
            await member.close(code=CLOSE_TOO_MANY)
            return None
        self._start()
        key = (path, query, access.key)
        group = self.groups.get(key)
        if group is None:
            group = Group(page, kwargs, path, query, host, access)
            self.groups[key] = group
        group.members[member] = user_id
        group.has[member] = -1  # nothing yet
        if group.shown:
            # What the group's other members have now; the render below brings what
            # changed since.
            group.has[member] = group.version
            await member.push(json.dumps({"regions": group.shown}))
        self._mark(group, at_once=True)
        return group

    def leave(self, member: Member) -> None:
        for key, group in list(self.groups.items()):
            group.has.pop(member, None)
            if group.members.pop(member, None) is not None and not group.members:
                if group.task is not None:
                    group.task.cancel()
                del self.groups[key]

    # -- notices -------------------------------------------------------------------
    def notice(self, notice: Mapping[str, Any]) -> None:
        if notice.get("topic") == ACCESS:
            self._recheck(notice.get("user"))
            return
        tenant_id = notice.get("tenant")
        for group in self.groups.values():
            if sees_tenant(group.access, tenant_id) and concerns(group.page, group.kwargs, notice):
                self._mark(group)

    def _recheck(self, user_id: Any) -> None:
        """That user's rights changed: their pages reconnect and are checked again."""
        for group in list(self.groups.values()):
            for member, member_user in list(group.members.items()):
                if user_id is None or member_user == user_id:
                    closing = asyncio.ensure_future(member.close(code=CLOSE_RECHECK))
                    self._closing.add(closing)
                    closing.add_done_callback(self._closing.discard)

    def everything_changed(self) -> None:
        for group in self.groups.values():
            self._mark(group)

    # -- rendering -----------------------------------------------------------------
    def _mark(self, group: Group, *, at_once: bool = False) -> None:
        group.dirty = True
        if group.task is None or group.task.done():
            group.task = asyncio.ensure_future(self._render_loop(group, at_once=at_once))

    async def _render_loop(self, group: Group, *, at_once: bool) -> None:
        delay = 0.0 if at_once else settings.LIVE_DEBOUNCE_SECONDS
        while group.dirty and group.members:
            wait = max(
                delay, group.rendered_at + settings.LIVE_MIN_INTERVAL_SECONDS - time.monotonic()
            )
            if wait > 0:
                await asyncio.sleep(wait)
            group.dirty = False
            delay = settings.LIVE_DEBOUNCE_SECONDS
            await self._render(group)

    async def _render(self, group: Group) -> None:
        members = dict(group.members)
        if not members:
            return
        user_id = next(iter(members.values()))  # any member: they share their rights
        group.rendered_at = time.monotonic()
        try:
            regions = await database_sync_to_async(_render_as)(user_id, group)
        except NotShown:
            for member in members:
                await member.close(code=CLOSE_NOT_SHOWN)
            return
        except Exception:
            logger.exception("live render of %s failed; the next notice retries", group.path)
            return
        self.renders += 1
        changed = {name: html for name, html in regions.items() if group.shown.get(name) != html}
        group.shown.update(regions)
        if changed:
            group.version += 1
        # A member one version behind gets what changed; one further behind (it joined
        # while a render was under way) gets the whole page. Each message encoded once.
        delta = json.dumps({"regions": changed}) if changed else ""
        whole = ""
        for member in list(group.members):
            had = group.has.get(member, -1)
            if had == group.version:
                continue
            if delta and had == group.version - 1:
                message = delta
            else:
                whole = whole or json.dumps({"regions": group.shown})
                message = whole
            group.has[member] = group.version
            try:
                await member.push(message)
            except Exception:
                logger.debug("live page gone while sending", exc_info=True)

    # -- the Redis subscription and the refresh timer --------------------------------
    def _start(self) -> None:
        if self._listener is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._listener = threading.Thread(target=self._listen, name="live-notices", daemon=True)
        self._listener.start()
        self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for group in list(self.groups.values()):
                if now - group.rendered_at >= group.refresh_seconds:
                    self._mark(group, at_once=True)

    def _listen(self) -> None:
        broken = False
        while not self._stop.is_set():
            try:
                pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(LIVE_CHANNEL)
                if broken:
                    logger.info("live notices are back; every open page is rendered again")
                    self._from_thread(self.everything_changed)
                    broken = False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._from_thread(self.notice, _decode(message["data"]))
            except (redis.RedisError, OSError) as exc:
                if not broken:
                    logger.warning("live notices interrupted (%s); reconnecting", exc)
                broken = True
                self._stop.wait(1.0)

    def _from_thread(self, callback: Any, *args: Any) -> None:
        if self._loop is not None and args != ({},):
            self._loop.call_soon_threadsafe(callback, *args)


def _decode(data: Any) -> dict[str, Any]:
    try:
        notice = json.loads(data)
    except (TypeError, ValueError):
        return {}
    return notice if isinstance(notice, dict) else {}


def _render_as(user_id: int, group: Group) -> dict[str, str]:
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise NotShown(403)
    return render_regions(
        user=user, path=group.path, query=group.query, host=group.host, regions=group.page.regions
    )


hub = Hub()
