"""The product's URLs plus one trivial DRF endpoint, for the API benchmark only."""

from __future__ import annotations

from django.db import connection, transaction
from django.urls import include, path
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class TrivialView(APIView):
    """The floor: DRF's request/response cycle and nothing else."""

    authentication_classes: list[object] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list[object] = []

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class TrivialWriteView(TrivialView):
    """A second floor: the same, plus one INSERT in a transaction (the bench_bare table)."""

    def post(self, request: Request) -> Response:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_bare (n, enqueued_at, started_at) VALUES (0, 0, now())"
            )
        return Response({"ok": True}, status=201)


urlpatterns = [
    path("bench/trivial/", TrivialView.as_view()),
    path("bench/trivial-write/", TrivialWriteView.as_view()),
    path("", include("config.urls")),
]

handler404 = "pms.api.errors.not_found_view"
handler500 = "pms.api.errors.server_error_view"
