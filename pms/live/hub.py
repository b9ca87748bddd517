"""The live server's fan-in and fan-out: one Redis subscription, one render per group.

Every open page joins the group of its path, query, host and viewer's rights (access).
A notice marks the groups it concerns; a marked group is rendered once, after
``LIVE_DEBOUNCE_SECONDS`` (so a burst of notices costs one render) and at most once
per ``LIVE_MIN_INTERVAL_SECONDS``, and each member is sent what it does not have yet.
A page that joins gets the group's last render at once, and the group is rendered
again (what changed between its load and its connection); every group is also
rendered at least every ``LIVE_REFRESH_SECONDS`` (a lost notice heals).

Rights are never trusted from the connect: every render first reads the current
rights of every member (a few queries, whatever the number of members), closes the
members whose rights changed ("check again": the page reconnects and joins the group
of its new rights) and renders as a member whose rights are still the group's. Every
``LIVE_RECHECK_SECONDS`` each member's session is checked to still be signed in.

A member is sent to by a task of its own with a deadline (``LIVE_SEND_TIMEOUT_SECONDS``),
so a page that stops reading (a laptop's lid closed) never holds its group back: it is
skipped while a send is under way, then sent the whole page, and closed past the deadline.

Notices arrive on a thread that reads Redis pub/sub and hands them to the event loop.
When the subscription is re-made (an outage, a Sentinel failover), every group is
rendered again: notices sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model

from pms.live.access import Access, access_keys, sees_tenant
from pms.live.pages import LivePage, concerns
from pms.live.render import NotShown, render_regions
from pms.pipeline.announce import ACCESS, live_channel
from pms.pipeline.log_context import bind_tenant
from pms.pipeline.redis_client import redis_client

logger = logging.getLogger(__name__)

# Renders run one at a time on a thread of their own: their CPU stays bounded (one core
# at most, at LIVE_NICE) and connects, which read rights on the default executor, never
# wait behind them.
_RENDERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-render")

# Close codes the page's script understands (pms/static/pms/live.js).
CLOSE_RECHECK = 4001  # the viewer's rights changed: reconnect, and be checked again
CLOSE_NOT_SHOWN = 4003  # the page is not (or no longer) shown to this viewer
CLOSE_TOO_MANY = 4029  # the viewer has LIVE_MAX_PAGES_PER_USER pages open already
CLOSE_SIGNED_OUT = 4401  # the viewer's session ended


class Member(Protocol):
    async def push(self, message: str) -> None: ...

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


@dataclass(frozen=True)
class Seat:
    user_id: int
    session_key: str


@dataclass(eq=False)
class Group:
    page: LivePage
    kwargs: Mapping[str, Any]
    path: str
    query: str
    host: str
    access: Access
    members: dict[Member, Seat] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # the last render, per region
    version: int = 0  # renders that changed something
    has: dict[Member, int] = field(default_factory=dict)  # the version each member was sent
    sending: set[Member] = field(default_factory=set)  # members a send is under way to
    rendered_at: float = 0.0
    dirty: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def refresh_seconds(self) -> float:
        return self.page.refresh_seconds or settings.LIVE_REFRESH_SECONDS


class Hub:
    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], Group] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._sessions_checked_at = time.monotonic()

    # -- members -------------------------------------------------------------------
    async def join(
        self,
        member: Member,
        *,
        seat: Seat,
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
            1
            for group in self.groups.values()
            for other in group.members.values()
            if other.user_id == seat.user_id
        )
        if open_pages >= settings.LIVE_MAX_PAGES_PER_USER:
            self._close(member, CLOSE_TOO_MANY)
            return None
        self._start()
        key = (path, query, host, access.key)
        group = self.groups.get(key)
        if group is None:
            group = Group(page, kwargs, path, query, host, access)
            self.groups[key] = group
        group.members[member] = seat
        group.has[member] = -1  # nothing yet: the next render sends it the whole page
        if group.shown:
            # What the group's other members have now; the render below brings what
            # changed since.
            group.has[member] = group.version
            self._send(group, member, json.dumps({"regions": group.shown}))
        self._mark(group, at_once=True)
        return group

    def leave(self, member: Member) -> None:
        for key, group in list(self.groups.items()):
            group.has.pop(member, None)
            group.sending.discard(member)
            if group.members.pop(member, None) is not None and not group.members:
                if group.task is not None:
                    group.task.cancel()
                del self.groups[key]

    def _close(self, member: Member, code: int) -> None:
        """Close ``member`` (never raising: its socket may be gone already) and drop it."""
        self.leave(member)

        async def close() -> None:
            try:
                await member.close(code=code)
            except Exception:
                logger.debug("live page gone while closing", exc_info=True)

        self._keep(asyncio.ensure_future(close()))

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            for member, seat in list(group.members.items()):
                if seat.user_id == user_id:
                    self._close(member, CLOSE_RECHECK)

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
            next_allowed = group.rendered_at + settings.LIVE_MIN_INTERVAL_SECONDS
            wait = max(delay, next_allowed - time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)
            group.dirty = False
            delay = settings.LIVE_DEBOUNCE_SECONDS
            await self._render(group)

    async def _render(self, group: Group) -> None:
        seats = dict(group.members)
        if not seats:
            return
        group.rendered_at = time.monotonic()
        user_ids = {seat.user_id for seat in seats.values()}
        try:
            changed_rights, regions = await database_sync_to_async(
                _checked_render, thread_sensitive=False, executor=_RENDERS
            )(group, user_ids)
        except NotShown:
            for member in seats:  # they share their rights: the page is not theirs either
                self._close(member, CLOSE_NOT_SHOWN)
            return
        except Exception:
            logger.exception("live render of %s failed; the next notice retries", group.path)
            return
        for member, seat in seats.items():
            if seat.user_id in changed_rights:
                self._close(member, CLOSE_RECHECK)
        if regions is None:
            return
        changed = {name: html for name, html in regions.items() if group.shown.get(name) != html}
        group.shown.update(regions)
        if changed:
            group.version += 1
        # A member one version behind gets what changed; one further behind (it joined
        # while a render was under way, or was busy receiving) gets the whole page.
        # Each message is encoded once.
        delta = json.dumps({"regions": changed}) if changed else ""
        whole = ""
        for member in list(group.members):
            had = group.has.get(member, -1)
            if had == group.version or member in group.sending:
                continue
            if delta and had == group.version - 1:
                message = delta
            else:
                whole = whole or json.dumps({"regions": group.shown})
                message = whole
            group.has[member] = group.version
            self._send(group, member, message)

    def _send(self, group: Group, member: Member, message: str) -> None:
        group.sending.add(member)

        async def send() -> None:
            try:
                await asyncio.wait_for(member.push(message), settings.LIVE_SEND_TIMEOUT_SECONDS)
            except Exception:
                logger.debug("live page not reading or gone: closed", exc_info=True)
                self._close(member, CLOSE_RECHECK)
            else:
                group.sending.discard(member)
                if group.has.get(member) != group.version and member in group.members:
                    self._mark(group)  # it missed a render while busy: send it the page

        self._keep(asyncio.ensure_future(send()))

    async def _check_sessions(self) -> None:
        """Close the pages whose session ended (expired, signed out elsewhere, flushed)."""
        seats = {
            member: seat for group in self.groups.values() for member, seat in group.members.items()
        }
        signed_in = await database_sync_to_async(_signed_in, thread_sensitive=False)(
            {(seat.session_key, seat.user_id) for seat in seats.values()}
        )
        for member, seat in seats.items():
            if (seat.session_key, seat.user_id) not in signed_in:
                self._close(member, CLOSE_SIGNED_OUT)

    # -- the Redis subscription and the timers ----------------------------------------
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
            try:
                for group in list(self.groups.values()):
                    if now - group.rendered_at >= group.refresh_seconds:
                        self._mark(group, at_once=True)
                if now - self._sessions_checked_at >= settings.LIVE_RECHECK_SECONDS:
                    self._sessions_checked_at = now
                    await self._check_sessions()
            except Exception:
                logger.exception("live timer pass failed; the next one retries")

    def _listen(self) -> None:
        """Read the notices for ever; each (re)subscription after the first renders all."""
        subscriptions = 0
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = redis_client().pubsub()
                pubsub.subscribe(live_channel())
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message.get("type") == "subscribe":
                        # redis-py re-subscribes by itself after a reconnect: this too.
                        subscriptions += 1
                        if subscriptions > 1:
                            logger.info("live notices are back; every open page is rendered")
                            self._from_thread(self.everything_changed)
                    elif message.get("type") == "message":
                        notice = _decode(message["data"])
                        if notice:
                            self._from_thread(self.notice, notice)
            except Exception as exc:
                logger.warning("live notices interrupted (%s); reconnecting", exc)
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        logger.debug("closing the broken subscription", exc_info=True)

    def _from_thread(self, callback: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)


def _decode(data: Any) -> dict[str, Any]:
    try:
        notice = json.loads(data)
    except (TypeError, ValueError):
        return {}
    return notice if isinstance(notice, dict) else {}


def _checked_render(group: Group, user_ids: set[int]) -> tuple[set[int], dict[str, str] | None]:
    """Whose rights changed, and the regions rendered as a member whose rights did not.

    None for the regions when no member still has the group's rights.
    """
    current = access_keys(user_ids)
    changed = {user_id for user_id in user_ids if current.get(user_id) != group.access.key}
    same = sorted(user_ids - changed)
    if not same:
        return changed, None
    user = get_user_model().objects.get(pk=same[0])
    # Log lines of the render carry the tenant, as a request's do (one tenant or "-").
    tenants = group.access.tenant_ids
    bind_tenant(next(iter(tenants)) if tenants and len(tenants) == 1 else None)
    regions = render_regions(
        user=user, path=group.path, query=group.query, host=group.host, regions=group.page.regions
    )
    return changed, regions


def _signed_in(seats: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """The (session, user) pairs whose session is still that user's, signed in."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    alive = set()
    for session_key, user_id in seats:
        session = store(session_key=session_key)
        if str(session.load().get(SESSION_KEY)) == str(user_id):
            alive.add((session_key, user_id))
    return alive


hub = Hub()
