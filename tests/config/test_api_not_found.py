"""Nothing under /api/ answers HTML: an unmatched API URL is a JSON 404, DEBUG on or off.

With DEBUG on, Django answers a URL no pattern matches with its HTML technical 404
and never calls handler404; config/urls.py ends with a catch-all for /api/.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

API_MISSES = [
    "/api/v1/properties/not-a-uuid/",
    "/api/v1/nothing-here/",
    "/api/v2/",
    "/api/",
]


def _assert_json_404(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
@pytest.mark.parametrize("path", API_MISSES)
@pytest.mark.django_db
def test_an_unmatched_api_url_is_a_json_404(client, debug, path):
    with override_settings(DEBUG=debug):
        _assert_json_404(client.get(path))
        _assert_json_404(client.post(path, data="{}", content_type="application/json"))


@pytest.mark.django_db
def test_debug_really_serves_the_technical_404_outside_the_api(client):
    """The control: the same request path through Django in DEBUG gives its HTML page,
    so the API test above does run through the technical-404 code path."""
    with override_settings(DEBUG=True):
        response = client.get("/nowhere/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "Using the URLconf defined in" in response.content.decode()


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
@pytest.mark.django_db
def test_a_missing_trailing_slash_still_redirects_a_get_and_is_a_json_404_otherwise(
    client, alice, debug
):
    with override_settings(DEBUG=debug):
        detail = f"/api/v1/properties/{alice.property.public_id}"
        response = client.get(f"{detail}?lang=en")
        assert response.status_code == 301
        assert response["Location"] == f"{detail}/?lang=en"
        # A POST cannot be redirected without losing its body (in DEBUG Django would
        # raise an HTML RuntimeError page): a JSON 404 instead.
        _assert_json_404(
            client.post("/api/v1/bookings", data="{}", content_type="application/json")
        )
        _assert_json_404(client.get("/api/v1/nothing-here"))  # no slashed route either


@pytest.mark.django_db
def test_the_catch_all_is_not_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["paths"]  # the real endpoints are there
    assert all("unmatched" not in path for path in schema["paths"])
    assert set(schema["paths"]) == {
        path for path in schema["paths"] if path.startswith(("/api/v1/", "/api/schema/"))
    }
