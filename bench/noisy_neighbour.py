"""A noisy neighbour: does tenant A's bulk work or slow receiver slow tenant B down?

Real worker processes grouped as in the Procfile (operational, payments, automation,
sync, outbound), real PostgreSQL and Redis, a real SMTP server and real HTTP peers on
loopback.

- Tenant A, the flood: 5,000 channel syncs ("sync now" on 5,000 channels), 2,000
  reminders due at once (the reminder sweep runs once, as beat would), a webhook
  receiver that answers after 10 s subscribed to every event, and A keeps booking.
- Tenant B: 100 bookings 50 ms apart, a webhook to a fast receiver, a push channel to a
  fast receiver, and a "sync now" of its own channel every half second.

Printed, B alone and under A's flood, p50 and p95 of:
- confirmation: B's booking committed -> its confirmation email accepted by SMTP;
- webhook: B's booking committed -> the booking.created webhook received;
- push: B's booking committed -> its availability update received;
- import: B's "sync now" -> its feed applied;
and the ratio of the p95s. Target (issue 15): each ratio <= 2, while A still progresses.

Run: make bench-isolation (or .venv/bin/python -m devstack exec -- .venv/bin/python
bench/noisy_neighbour.py --flood 5000 --reminders 2000 --bookings 100)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    RESULTS,
    StaticFeedServer,
    bench_environment,
    django_setup,
    flush_broker,
    ical_channels,
    summary,
    workers,
    write_result,
)
from testkit.processes import free_port


# As the Procfile's defaults; the background group at a lower CPU priority (BULK_NICE).
def worker_groups(bulk_nice: int) -> dict[str, tuple[str, int, int]]:
    return {
        "operational": ("bookings,accounting,default", 2, 0),
        "messaging": ("messaging", 16, 0, "threads"),
        "payments": ("payments,fallback", 1, 0),
        "automation": ("automation,messaging_batch,bulk", 4, bulk_nice),
        "sync": ("channelsync", 2, 0),
        "outbound": ("outbound", 6, 0),
    }


SLOW_RECEIVER_SECONDS = 10.0


class Receiver:
    """A loopback HTTP receiver: each request's arrival goes to ``record`` before it answers
    (after ``delay``, as a slow receiver would)."""

    def __init__(self, kind: str, record: Any, delay: float = 0.0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record(kind, dict(self.headers), body)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the sender gave up waiting (its timeout): that is the point

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """A real SMTP server (aiosmtpd) that accepts every message."""

    def __enter__(self) -> SmtpServer:
        from aiosmtpd.controller import Controller

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                return "250 accepted"

        port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def peers_process(ready: Any, stop: Any, log_path: str) -> None:
    """The peers, in a process of their own (the bench's threads must not slow their
    answers): the SMTP server, both tenants' feeds and the three receivers. Every request
    a receiver gets is one JSON line in ``log_path``, with its arrival time."""
    lock = threading.Lock()
    out = open(log_path, "a")  # noqa: SIM115 - closed below

    def record(kind: str, headers: dict[str, str], body: bytes) -> None:
        line = {
            "kind": kind,
            "at": time.time(),
            "event_id": headers.get("X-PMS-Event-Id", ""),
            "body": body.decode(errors="replace")[:2000],
        }
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()

    with (
        SmtpServer() as smtp,
        StaticFeedServer() as a_feed,
        StaticFeedServer() as b_feed,
        Receiver("a_hook", record, delay=SLOW_RECEIVER_SECONDS) as a_hook,
        Receiver("b_hook", record) as b_hook,
        Receiver("b_push", record) as b_push,
    ):
        ready.put(
            {
                "smtp": smtp.url,
                "a_feed": a_feed.url,
                "b_feed": b_feed.url,
                "a_hook": a_hook.url,
                "b_hook": b_hook.url,
                "b_push": b_push.url,
            }
        )
        stop.wait()
    out.close()


def received(log_path: str, kind: str) -> list[dict[str, Any]]:
    with open(log_path) as lines:
        return [row for row in map(json.loads, lines) if row["kind"] == kind]


def build(
    a_feed: str, b_feed: str, a_hook: str, b_hook: str, b_push: str, flood: int
) -> dict[str, Any]:
    from django.core.management import call_command

    from channelsync.services import channel_create, webhook_subscription_create
    from pms.models import Guest, Property
    from tenants.models import Tenant

    call_command("flush", interactive=False, verbosity=0)
    tenant_a = Tenant.objects.create(name="Flooder", slug="flooder")
    tenant_b = Tenant.objects.create(name="Bystander", slug="bystander")
    prop_a = Property.objects.create(
        tenant=tenant_a, name="A", slug="a", nightly_rate=100, max_guests=4
    )
    prop_b = Property.objects.create(
        tenant=tenant_b, name="B", slug="b", nightly_rate=100, max_guests=4
    )
    guest_a = Guest.objects.create(tenant=tenant_a, name="Guest A", email="a@example.test")
    guest_b = Guest.objects.create(tenant=tenant_b, name="Guest B", email="b@example.test")
    ical_channels(tenant_a, prop_a, a_feed, flood, prefix="a")
    (channel_b,) = ical_channels(tenant_b, prop_b, b_feed, 1, prefix="b")
    # Generous rate limit: B's 20 bookings a second must not queue behind its own bucket.
    channel_create(
        tenant=tenant_b,
        property=prop_b,
        name="B push",
        kind="push_api",
        push_url=b_push,
        rate_limit_per_second=100,
        rate_limit_burst=100,
    )
    webhook_subscription_create(tenant=tenant_a, url=a_hook, event_types=["*"], send_test=False)
    webhook_subscription_create(
        tenant=tenant_b, url=b_hook, event_types=["booking.created"], send_test=False
    )
    return {
        "a": tenant_a,
        "b": tenant_b,
        "prop_a": prop_a,
        "prop_b": prop_b,
        "guest_a": guest_a,
        "guest_b": guest_b,
        "channel_b": channel_b,
    }


def _book(tenant: Any, prop: Any, guest: Any, day: date) -> Any:
    from bookings.services import booking_create

    return booking_create(
        tenant=tenant, property=prop, guest=guest, check_in=day, check_out=day + timedelta(days=1)
    )


def measure_b(world: dict[str, Any], start: date, count: int, log_path: str):  # type: ignore[no-untyped-def]
    """B's phase: bookings 50 ms apart and repeated syncs; returns latencies in seconds."""
    from automation.models import OutboundMessage
    from channelsync.models import Channel
    from channelsync.services import channel_sync_request
    from pms.models import DomainEvent

    import_latencies: list[float] = []
    stop = threading.Event()

    def sync_loop() -> None:
        channel = world["channel_b"]
        while not stop.is_set():
            asked = time.time()
            channel_sync_request(channel=channel)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                synced = Channel.objects.get(pk=channel.pk).last_success_at
                if synced and synced.timestamp() >= asked:
                    import_latencies.append(synced.timestamp() - asked)
                    break
                time.sleep(0.02)
            time.sleep(0.5)

    syncer = threading.Thread(target=sync_loop, daemon=True)
    syncer.start()
    bookings = []
    for i in range(count):
        bookings.append(
            _book(world["b"], world["prop_b"], world["guest_b"], start + timedelta(2 * i))
        )
        time.sleep(0.05)
    ids = {str(b.pk) for b in bookings}
    created = {
        str(event.id): (event.aggregate_id, event.created_at.timestamp())
        for event in DomainEvent.objects.filter(event_type="booking.created", aggregate_id__in=ids)
    }
    committed = dict(created.values())  # booking id -> its booking.created commit time

    def hooks() -> list[dict[str, Any]]:
        return [row for row in received(log_path, "b_hook") if row["event_id"] in created]

    def pushes() -> list[tuple[float, str]]:
        rows = []
        for row in received(log_path, "b_push"):
            booking_id = json.loads(row["body"]).get("reservation", "").removeprefix("booking:")
            if booking_id in committed:
                rows.append((row["at"], booking_id))
        return rows

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        emails = OutboundMessage.objects.filter(
            booking_id__in=ids, kind="guest_access", status="sent"
        ).count()
        if emails == count and len(hooks()) >= count and len({b for _, b in pushes()}) >= count:
            break
        time.sleep(0.2)
    stop.set()
    syncer.join(130)
    email_latencies = [
        message.sent_at.timestamp() - committed[str(message.booking_id)]
        for message in OutboundMessage.objects.filter(
            booking_id__in=ids, kind="guest_access", sent_at__isnull=False
        )
    ]
    webhook_latencies = [row["at"] - created[row["event_id"]][1] for row in hooks()]
    first_push: dict[str, float] = {}
    for at, booking_id in pushes():
        first_push[booking_id] = min(at, first_push.get(booking_id, at))
    push_latencies = [at - committed[booking_id] for booking_id, at in first_push.items()]
    return {
        "confirmation": email_latencies,
        "webhook": webhook_latencies,
        "push": push_latencies,
        "import": import_latencies,
    }


def reminders(world: dict[str, Any], count: int) -> None:
    from automation.models import OutboundMessage

    when = datetime.now(UTC) - timedelta(minutes=1)
    OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(
                tenant=world["a"],
                idempotency_key=f"bench-reminder-{i}-{when.timestamp()}",
                kind="template:before_check_in",
                recipient=f"guest-{i}@example.test",
                subject="See you soon",
                body="Your stay starts in 3 days.",
                status="scheduled",
                send_after=when,
            )
            for i in range(count)
        ],
        batch_size=1000,
    )


def flood_process(world_pks: dict[str, int], args: dict[str, Any], go: Any, stop: Any) -> None:
    """Tenant A, in a process of its own: "sync now" on every one of its channels, the
    reminder sweep over its reminders due at once, and a booking every few seconds."""
    django_setup(migrate=False)
    from automation.services.outbound import outbound_messages_send_due
    from channelsync.models import Channel
    from channelsync.services import channels_sync_request
    from pms.models import Guest, Property
    from tenants.models import Tenant

    tenant = Tenant.objects.get(pk=world_pks["a"])
    prop = Property.objects.get(pk=world_pks["prop_a"])
    guest = Guest.objects.get(pk=world_pks["guest_a"])
    channels = list(Channel.objects.filter(tenant=tenant))
    go.wait()

    def keep_booking() -> None:
        day = date.today() + timedelta(days=1)
        while not stop.is_set():
            _book(tenant, prop, guest, day)
            day += timedelta(days=2)
            stop.wait(args["a_booking_interval"])

    booker = threading.Thread(target=keep_booking, daemon=True)
    booker.start()
    outbound_messages_send_due()  # the beat's sweep: A's reminders are all due
    channels_sync_request(channels=channels)  # the admin's "Sync now" on all 5,000
    booker.join()


def progress_of_a(world: dict[str, Any], since: datetime, log_path: str) -> dict[str, int]:
    from automation.models import OutboundMessage
    from bookings.models import Booking
    from channelsync.models import Channel, WebhookDelivery

    return {
        "syncs_applied": Channel.objects.filter(
            tenant=world["a"], last_success_at__gte=since
        ).count(),
        "reminders_sent": OutboundMessage.objects.filter(
            tenant=world["a"], kind="template:before_check_in", status="sent"
        ).count(),
        "bookings": Booking.objects.filter(tenant=world["a"], created_at__gte=since).count(),
        "webhook_attempts": sum(
            WebhookDelivery.objects.filter(tenant=world["a"]).values_list("attempts", flat=True)
        ),
        "slow_receiver_requests": len(received(log_path, "a_hook")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=5000, help="tenant A's channel syncs")
    parser.add_argument("--reminders", type=int, default=2000, help="tenant A's reminders due")
    parser.add_argument("--bookings", type=int, default=100, help="tenant B's bookings per phase")
    parser.add_argument(
        "--a-booking-interval",
        type=float,
        default=1.0,
        help="seconds between tenant A's own bookings during the flood",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="B bookings before measuring (not counted)"
    )
    parser.add_argument(
        "--bulk-nice",
        type=int,
        default=int(os.environ.get("BULK_NICE", 10)),
        help="CPU niceness of the bulk worker groups (the Procfile's BULK_NICE)",
    )
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    bench_environment()
    log_path = str(RESULTS / "noisy_neighbour-requests.jsonl")
    Path(log_path).write_text("")
    ready, stop_peers = context.Queue(), context.Event()
    peers = context.Process(target=peers_process, args=(ready, stop_peers, log_path))
    peers.start()
    urls = ready.get(timeout=60)
    os.environ["EMAIL_URL"] = urls["smtp"]  # the workers inherit it
    django_setup()
    flush_broker()
    try:
        with workers(worker_groups(args.bulk_nice)):
            world = build(
                urls["a_feed"],
                urls["b_feed"],
                urls["a_hook"],
                urls["b_hook"],
                urls["b_push"],
                args.flood,
            )
            far = date.today() + timedelta(days=30)
            # Warm every worker process (imports, connections) before anything counts.
            measure_b(world, far + timedelta(days=600), args.warmup, log_path)
            alone = measure_b(world, far, args.bookings, log_path)

            reminders(world, args.reminders)
            go, stop_flood = context.Event(), context.Event()
            pks = {name: world[name].pk for name in ("a", "prop_a", "guest_a")}
            flooder = context.Process(target=flood_process, args=(pks, vars(args), go, stop_flood))
            flooder.start()
            flood_started = datetime.now(UTC)
            go.set()
            time.sleep(3.0)  # the flood is under way
            flooded = measure_b(world, far + timedelta(days=300), args.bookings, log_path)
            a_progress = progress_of_a(world, flood_started, log_path)
            stop_flood.set()
            flooder.join(120)
            if flooder.is_alive():
                flooder.terminate()
    finally:
        stop_peers.set()
        peers.join(30)

    print(
        f"\nNoisy neighbour: A floods {args.flood} syncs, {args.reminders} reminders, a "
        f"{SLOW_RECEIVER_SECONDS:.0f} s webhook receiver, and books every "
        f"{args.a_booking_interval:g} s; B books {args.bookings} stays 50 ms apart"
    )
    print(
        f"{'B, booking ->':26}{'alone p50/p95 ms':>20}{'under flood p50/p95':>22}{'p95 ratio':>11}"
    )
    results: dict[str, Any] = {}
    worst = 0.0
    for name in ("confirmation", "webhook", "push", "import"):
        a, f = summary(alone[name]), summary(flooded[name])
        ratio = f["p95_ms"] / a["p95_ms"] if a["p95_ms"] else float("nan")
        worst = max(worst, ratio)
        results[name] = {"alone": a, "flooded": f, "p95_ratio": round(ratio, 2)}
        print(
            f"{name:26}{a['median_ms']:>9} / {a['p95_ms']:<8}{f['median_ms']:>11} / "
            f"{f['p95_ms']:<8}{ratio:>9.2f}   (n={a['count']}/{f['count']})"
        )
    print(f"worst p95 ratio: {worst:.2f}   target: <= 2.00   {'OK' if worst <= 2 else 'MISSED'}")
    print(f"A during B's flooded phase: {a_progress}")
    path = write_result(
        "noisy_neighbour",
        {**vars(args), "results": results, "a_progress": a_progress, "worst_ratio": worst},
    )
    print(f"written {path}")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
