from __future__ import annotations

from rest_framework import serializers

from automation.choices import MaintenancePriority
from automation.models import MaintenanceRequest


class MaintenanceReportSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    priority = serializers.ChoiceField(
        choices=MaintenancePriority.choices, default=MaintenancePriority.NORMAL
    )


class MaintenanceRequestSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = MaintenanceRequest
        fields = ["id", "title", "description", "priority", "status", "created_at"]
        read_only_fields = fields
