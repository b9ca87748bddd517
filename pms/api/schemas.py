"""Serializers that only describe responses in the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    # The metaclass moves declared fields into ``_declared_fields``, so this does not
    # replace ``Serializer.fields`` at runtime; the stubs cannot see that.
    fields = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Per-field messages when the input was invalid."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
