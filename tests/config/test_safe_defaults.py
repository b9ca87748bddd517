"""No credential ships with the code: Flower has no default login, and the demo users with
their published password exist only in debug or when asked for (SEED_DEMO=1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from devstack import supervise
from pms.management.commands.seed_demo import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def test_the_procfile_gives_flower_no_default_login():
    flower = supervise.procfile_entries((ROOT / "Procfile").read_text())["flower"]
    auth = re.search(r"--basic-auth=(\S+)", flower)
    assert auth is not None
    # ${VAR:?message}: the shell refuses to start Flower when it is unset.
    assert auth.group(1).startswith("${FLOWER_BASIC_AUTH:?"), flower
    assert "flower-pass" not in (ROOT / "Procfile").read_text()


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_seed_demo_with_debug_off_creates_no_user_with_the_published_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.delenv("SEED_DEMO", raising=False)
    call_command("seed_demo")
    assert "skipped" in capsys.readouterr().out
    assert not get_user_model().objects.filter(username="admin").exists()


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_seed_demo_seeds_with_debug_off_when_asked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SEED_DEMO", "1")
    call_command("seed_demo")
    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password(DEMO_PASSWORD)
