"""Serializers that only describe responses in the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    # The body's key is "fields": DRF's metaclass takes it as a declared field, so it
    # never shadows Serializer.fields at run time; only the type checker sees a clash.
    fields = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Per-field messages when the input was invalid."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
