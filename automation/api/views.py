"""Guest API: report a maintenance issue about the booking the token opens."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from automation.api.serializers import MaintenanceReportSerializer, MaintenanceRequestSerializer
from automation.choices import ReportedBy
from automation.services import MaintenanceError, maintenance_request_create
from bookings.models import Booking
from pms.api.errors import domain_error_response
from pms.api.guest import ERRORS, GuestBookingAPIView, invalid_response


class GuestMaintenanceView(GuestBookingAPIView):
    @extend_schema(
        request=MaintenanceReportSerializer,
        responses={201: MaintenanceRequestSerializer, **ERRORS},
        tags=["bookings"],
    )
    def post(self, request: Request, reference: str) -> Response:
        """Report a problem at the property (urgent ones alert the manager at once)."""
        booking: Booking = self.booking(request, reference)
        payload = MaintenanceReportSerializer(data=request.data)
        if not payload.is_valid():
            return invalid_response(payload)
        data = payload.validated_data
        try:
            created = maintenance_request_create(
                property=booking.property,
                booking=booking,
                title=data["title"],
                description=data.get("description", ""),
                priority=data["priority"],
                reported_by=ReportedBy.GUEST,
                actor=f"guest:{reference}",
            )
        except MaintenanceError as exc:
            return domain_error_response(exc)
        return Response(MaintenanceRequestSerializer(created).data, status=status.HTTP_201_CREATED)
