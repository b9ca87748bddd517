from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand

from pms.management.commands.seed_demo import DEMO_PASSWORD, TENANTS, demo_requested


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


class Command(BaseCommand):
    help = "Print where the local stack answers and the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        env = os.environ.get
        web = f"http://{env('WEB_HOST', '127.0.0.1')}:{env('WEB_PORT', '8000')}"
        flower = f"http://{env('FLOWER_HOST', '127.0.0.1')}:{env('FLOWER_PORT', '5555')}"
        database = settings.DATABASES["default"]
        lines = [
            "",
            "PMS stack",
            f"  admin        {web}/admin/",
            f"  live pages   ws://{env('WEB_HOST', '127.0.0.1')}:{env('LIVE_PORT', '8001')}/live/"
            "   (open admin pages update without a reload)",
            f"  API schema   {web}/api/schema/   Swagger UI {web}/api/docs/",
            f"  Flower       {flower}/   (basic auth {env('FLOWER_BASIC_AUTH', 'unset')})",
            f"  database     {database.get('HOST')}:{database.get('PORT')}/{database.get('NAME')}",
            f"  broker       {_without_password(settings.CELERY_BROKER_URL)}",
            "  logs         .local/logs/<process>.log   status: make ps",
        ]
        if demo_requested():
            lines += [f"Demo logins (password for all: {DEMO_PASSWORD})", "  admin (superuser)"]
            lines += [
                f"  {slug}-manager, {slug}-staff, {slug}-cleaner  ({name})"
                for name, slug, _ in TENANTS
            ]
        else:
            lines.append("No demo data (DEBUG is off; SEED_DEMO=1 seeds it).")
        lines.append("A process that dies is restarted; Ctrl-C stops everything.\n")
        self.stdout.write("\n".join(lines))
