"""`make run`'s process supervisor: the Procfile becomes a supervisord configuration that
supervisord itself accepts, with restarts on, whole process groups stopped, and scaling.

What it does at run time (a worker killed with kill -9 is restarted, the web keeps
serving, Ctrl-C leaves nothing behind) is shown by the stack smoke test, `make smoke`.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally
from supervisor.options import ServerOptions

from devstack import cli, supervise
from devstack import secrets as devstack_secrets

PROGRAMS = [
    "web",
    "operational",
    "messaging",
    "payments",
    "automation",
    "sync",
    "publisher",
    "beat",
    "flower",
    "watchdog",
]


def _realized(tmp_path: Path, scale: str = "") -> ServerOptions:
    entries = supervise.procfile_entries(supervise.PROCFILE.read_text())
    conf = tmp_path / "supervisord.conf"
    (tmp_path / "logs").mkdir()
    conf.write_text(
        supervise.render_config(
            entries,
            supervise.stack_scale(scale, list(entries)),
            run_dir=tmp_path,
            log_dir=tmp_path / "logs",
            python=sys.executable,
        )
    )
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    return options


def test_every_procfile_line_is_a_supervised_program_that_restarts_and_stops_as_a_group(
    tmp_path: Path,
):
    options = _realized(tmp_path)
    programs = {
        process.name: process
        for group in options.process_group_configs
        for process in group.process_configs
    }
    assert set(PROGRAMS) <= programs.keys()
    for name in PROGRAMS:
        process = programs[name]
        assert process.autorestart is RestartUnconditionally
        assert process.stopasgroup and process.killasgroup  # pool children go too
        assert process.startretries >= 3
        assert process.command.startswith("/bin/sh -c 'exec ")
    # Celery's %h reaches the worker untouched (supervisord interpolates %(...)s).
    assert "-n operational-${PORT:-0}@%h" in programs["operational"].command


def test_stack_scale_runs_more_worker_processes_with_their_own_names(tmp_path: Path):
    options = _realized(tmp_path, scale="operational=2,sync=3")
    names = {p.name for g in options.process_group_configs for p in g.process_configs}
    assert {"operational-0", "operational-1", "sync-0", "sync-1", "sync-2"} <= names
    assert "operational" not in names


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("nosuch=2", "not in the Procfile"),
        ("web=2", "runs as one process"),
        ("sync=two", "is not name=number"),
        ("sync=0", "between 1 and 32"),
    ],
)
def test_a_wrong_stack_scale_is_one_readable_error(raw: str, message: str):
    with pytest.raises(supervise.StackConfigError, match=message):
        supervise.stack_scale(raw, PROGRAMS)


def test_a_malformed_procfile_line_names_its_line_number():
    with pytest.raises(supervise.StackConfigError, match="line 2"):
        supervise.procfile_entries("web: gunicorn x\nthis is not an entry\n")


def test_make_run_generates_this_checkouts_secrets_once_and_keeps_them_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(devstack_secrets, "LOCAL", tmp_path)
    monkeypatch.setattr(devstack_secrets, "LOCAL_SECRETS", tmp_path / "secrets.env")
    first = devstack_secrets.local_secrets()
    assert len(first["DJANGO_SECRET_KEY"]) >= 50
    user, _, password = first["FLOWER_BASIC_AUTH"].partition(":")
    assert user == "flower" and len(password) >= 12 and password != "flower-pass"
    assert stat.S_IMODE((tmp_path / "secrets.env").stat().st_mode) == 0o600
    assert devstack_secrets.local_secrets() == first  # stable across runs
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:chosen-by-the-operator")
    env = cli.child_env({})
    assert env["DJANGO_SECRET_KEY"] == first["DJANGO_SECRET_KEY"]
    assert env["FLOWER_BASIC_AUTH"] == "ops:chosen-by-the-operator"  # a set variable wins
