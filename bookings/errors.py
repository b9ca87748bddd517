from __future__ import annotations

from django.core.exceptions import ValidationError


class BookingError(ValidationError):
    """A booking rule was broken. ``code`` is stable (the API returns it)."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.error_code = code
        self.field = field
        self.text = message

    def __str__(self) -> str:
        return self.text
