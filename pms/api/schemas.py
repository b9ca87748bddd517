"""Serializers that only describe responses in the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        required=False, help_text="Per-field messages when the input was invalid."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
