"""What one guest may send the pages: bodies no bigger than a photo, a few posts a minute.

The pages are open to whoever holds the link; a script holding one must neither fill the
disk with an endless upload nor flood the host with messages and reports.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

FORM_OVERHEAD_BYTES = 256 * 1024  # the form's other fields and the multipart framing


def body_too_large(request: HttpRequest) -> bool:
    """A POST without a length, or longer than a photo and its form (read before the body)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or -1)
    except ValueError:
        return True
    return length < 0 or length > settings.GUEST_PHOTO_MAX_BYTES + FORM_OVERHEAD_BYTES


def posts_exhausted(reference: str) -> bool:
    """Count a POST for the booking in this minute; True when it is one too many."""
    limit = settings.GUEST_PAGE_POSTS_PER_MINUTE
    if limit <= 0:
        return False
    key = f"guest-pages:posts:{reference}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=120)
    return cache.incr(key) > limit
