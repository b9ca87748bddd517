"""Settings for the API benchmark only: production settings plus a bench URLconf.

``bench/api.py`` starts gunicorn with ``DJANGO_SETTINGS_MODULE=bench.settings_bench``;
nothing else uses this module. The only differences from config.settings: the
URLconf adds a trivial DRF endpoint (bench.trivial_urls), and STATIC_ROOT points
at a bench directory (BENCH_STATIC_ROOT) so whitenoise finds one.
"""

import os

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.trivial_urls"
if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
