from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from automation.api import urls as automation_api_urls
from bookings.api import urls as bookings_api_urls
from pms.api.errors import api_not_found_view
from pms.monitoring.health import health_view, liveness_view
from pms.monitoring.metrics import metrics_view, restricted

admin.site.site_header = "PMS administration"
admin.site.site_title = "PMS admin"
admin.site.index_title = "Properties, bookings and the event pipeline"
# The index opens on the day's work (pms.dashboard: each app's panels), then the models.
admin.site.index_template = "admin/pms/dashboard.html"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", restricted(metrics_view), name="prometheus-metrics"),
    path("health/", health_view, name="health"),
    path("health/live/", liveness_view, name="health-live"),
    # The guest API: one namespace, each app's endpoints (automation's about a booking too).
    path(
        "api/v1/",
        include(
            (
                [*bookings_api_urls.urlpatterns, *automation_api_urls.urlpatterns],
                "bookings-api",
            )
        ),
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("ical/", include("channelsync.api.urls")),
    # The guest's pages behind the emailed link, and the language switch they offer.
    path("stay/", include("guestportal.urls")),
    # The cleaner's phone pages (signed in): today's tasks, start, done, notes, problems.
    path("clean/", include("automation.cleaner.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # Last: anything else under /api/ is a JSON 404, DEBUG or not (handler404 is not
    # called in DEBUG). A plain Django view, so it stays out of the OpenAPI schema.
    re_path(r"^api/(?P<unmatched>.*)$", api_not_found_view, name="api-not-found"),
]

handler404 = "pms.api.errors.not_found_view"
handler500 = "pms.api.errors.server_error_view"
