"""The event pipeline: the kernel every app builds on.

Layers, each importing only the ones below it (checked by import-linter, see
pyproject.toml ``[tool.importlinter]``)::

    reconcile, relay,     the truth about what was delivered; re-sending what was lost;
    publisher             the outbox publisher process, woken by PostgreSQL's NOTIFY
    publishing            emit_event inside a service's transaction; its messages sent after
                          commit (here, or by the publisher); bulk_events (deliveries of
                          events caused in bulk go to ``bulk``)
    registry              @event_handler: which handler runs on which queue
    delivery              one (event, handler) delivery, applied exactly once
    endpoints             lanes (one remote endpoint of one tenant) and their circuit breakers
    failures, fairness,   FailedTask rows and staff actions; fair admission of bulk work per
    failure_digest        tenant, kind and lane; the staff email of what failed
    pending               the claim-and-sweep mechanism of every "pending row + due time" table
    enqueue               enqueue_on_commit: send a task after commit, never lose the promise
    task_base             ReliableTask: retries, poison guard, hooks for the layers above
    broker_stats,         queue depth and oldest age read from the broker; the publish log
    waiting               behind the oldest age on RabbitMQ
    errors, deadlines,    retry classes; how long before a re-send; the Redis client;
    redis_client, log_*,  tenant ids on log lines; quiet housekeeping logs; the broker-outage
    broker_guard          guard of the Redis transport

The Celery tasks that run these passes are in ``pms.tasks`` (above the pipeline):
the pipeline sends them by name and never imports them.

Apps import from here (and from each other's ``events`` catalogues), never the reverse.
"""
