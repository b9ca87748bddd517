"""The guest API. Views validate input, call a service, render output; nothing else."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bookings.api.auth import AnonymousClientThrottle, BookingCreateThrottle
from bookings.api.idempotency import HEADER, idempotent
from bookings.api.serializers import (
    AvailabilitySerializer,
    BookingCreatedSerializer,
    BookingCreateSerializer,
    BookingSerializer,
    CancellationPreviewSerializer,
    ChangePreviewSerializer,
    DateRangeQuerySerializer,
    MessageCreateSerializer,
    MessageSerializer,
    PropertyPublicSerializer,
    QuoteQuerySerializer,
    QuoteSerializer,
    StayChangeSerializer,
)
from bookings.choices import BookingSource, MessageSender
from bookings.errors import BookingError
from bookings.pricing import quote_stay
from bookings.selectors import property_availability
from bookings.services import (
    ChangePreview,
    booking_cancel,
    booking_cancel_preview,
    booking_change_preview,
    booking_create,
    booking_modify,
    guest_message_post,
    guest_token_issue,
)
from pms.api.errors import domain_error_response, error_response
from pms.api.guest import ERRORS, GuestBookingAPIView, invalid_response
from pms.api.schemas import ErrorSerializer
from pms.models import Property
from pms.pipeline.log_context import bind_tenant
from pms.services import guest_get_or_create


class PublicAPIView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AnonymousClientThrottle]


def _public_property(public_id: Any) -> Property:
    return get_object_or_404(Property.objects.filter(is_active=True), public_id=public_id)


class PropertyDetailView(PublicAPIView):
    @extend_schema(responses={200: PropertyPublicSerializer, **ERRORS}, tags=["properties"])
    def get(self, request: Request, public_id: str) -> Response:
        """A property's public details."""
        return Response(PropertyPublicSerializer(_public_property(public_id)).data)


class AvailabilityView(PublicAPIView):
    @extend_schema(
        parameters=[DateRangeQuerySerializer],
        responses={200: AvailabilitySerializer, **ERRORS},
        tags=["properties"],
    )
    def get(self, request: Request, public_id: str) -> Response:
        """Night-by-night availability for [start, end) (end is the last check-out day)."""
        query = DateRangeQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return invalid_response(query)
        prop = _public_property(public_id)
        start, end = query.validated_data["start"], query.validated_data["end"]
        days = property_availability(property=prop, start=start, end=end)
        return Response(
            AvailabilitySerializer(
                {
                    "property": prop.public_id,
                    "start": start,
                    "end": end,
                    "days": [{"date": day, "available": free} for day, free in days],
                }
            ).data
        )


class QuoteView(PublicAPIView):
    @extend_schema(
        parameters=[QuoteQuerySerializer],
        responses={200: QuoteSerializer, **ERRORS},
        tags=["properties"],
    )
    def get(self, request: Request, public_id: str) -> Response:
        """The price of a stay: nightly rates (with the manager's overrides), cleaning, taxes."""
        query = QuoteQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return invalid_response(query)
        prop = _public_property(public_id)
        data = query.validated_data
        if data["guests"] > prop.max_guests:
            return error_response(
                "too_many_guests",
                f"{prop.name} takes at most {prop.max_guests} guests.",
                400,
                {"guests": [f"At most {prop.max_guests}."]},
            )
        quote = quote_stay(property=prop, check_in=data["check_in"], check_out=data["check_out"])
        days = property_availability(property=prop, start=data["check_in"], end=data["check_out"])
        return Response(
            QuoteSerializer(
                {
                    "check_in": quote.check_in,
                    "check_out": quote.check_out,
                    "nights": quote.nights,
                    "nightly": [{"date": day, "rate": rate} for day, rate in quote.nightly],
                    "accommodation": quote.accommodation,
                    "cleaning_fee": quote.cleaning_fee,
                    "taxes": quote.taxes,
                    "total": quote.total,
                    "currency": quote.currency,
                    "available": all(free for _, free in days),
                }
            ).data
        )


class BookingCreateView(PublicAPIView):
    throttle_classes = [AnonymousClientThrottle, BookingCreateThrottle]

    @extend_schema(
        request=BookingCreateSerializer,
        parameters=[
            OpenApiParameter(
                HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="A unique key per booking attempt (e.g. a UUID). Repeating the "
                "request with the same key returns the first answer instead of booking twice.",
            )
        ],
        responses={201: BookingCreatedSerializer, 422: ErrorSerializer, **ERRORS},
        tags=["bookings"],
    )
    def post(self, request: Request) -> Response:
        """Book a stay. The answer carries the secret token that opens the booking."""
        return idempotent(
            request,
            serializer=BookingCreateSerializer(data=request.data),
            work=self._create,
            subject=lambda data: data["guest"]["email"],
        )

    def _create(self, data: dict[str, Any]) -> Response:
        prop = (
            Property.objects.select_related("tenant")
            .filter(public_id=data["property"], is_active=True)
            .first()
        )
        if prop is None:
            return error_response("not_found", "No such property.", 404, {"property": ["Unknown."]})
        bind_tenant(prop.tenant_id)  # from here on, this request's log lines are the host's
        try:
            with transaction.atomic():
                guest = guest_get_or_create(tenant=prop.tenant, **data["guest"])
                booking = booking_create(
                    tenant=prop.tenant,
                    property=prop,
                    guest=guest,
                    check_in=data["check_in"],
                    check_out=data["check_out"],
                    guests_count=data["guests"],
                    source=BookingSource.DIRECT,
                    actor=f"api:{data['guest']['email']}",
                    public_limits=True,
                )
                token = guest_token_issue(booking=booking)
        except BookingError as exc:
            return domain_error_response(exc)
        return Response(
            BookingCreatedSerializer(booking, context={"token": token}).data,
            status=status.HTTP_201_CREATED,
        )


class GuestBookingView(GuestBookingAPIView):
    @extend_schema(responses={200: BookingSerializer, **ERRORS}, tags=["bookings"])
    def get(self, request: Request, reference: str) -> Response:
        """The booking this token opens."""
        return Response(BookingSerializer(self.booking(request, reference)).data)


class GuestBookingCancelView(GuestBookingAPIView):
    @extend_schema(responses={200: CancellationPreviewSerializer, **ERRORS}, tags=["bookings"])
    def get(self, request: Request, reference: str) -> Response:
        """What cancelling today would refund under the policy (nothing is cancelled)."""
        try:
            preview = booking_cancel_preview(booking=self.booking(request, reference))
        except BookingError as exc:
            return domain_error_response(exc)
        return Response(CancellationPreviewSerializer(preview).data)

    @extend_schema(request=None, responses={200: BookingSerializer, **ERRORS}, tags=["bookings"])
    def post(self, request: Request, reference: str) -> Response:
        """Cancel the booking; the property's cancellation policy decides the refund."""
        booking = self.booking(request, reference)
        try:
            booking = booking_cancel(
                booking=booking, reason="cancelled by the guest", actor=f"guest:{reference}"
            )
        except BookingError as exc:
            return domain_error_response(exc)
        return Response(BookingSerializer(booking).data)


class GuestBookingChangeView(GuestBookingAPIView):
    @extend_schema(
        parameters=[QuoteQuerySerializer],
        responses={200: ChangePreviewSerializer, **ERRORS},
        tags=["bookings"],
    )
    def get(self, request: Request, reference: str) -> Response:
        """What new dates or party size would cost, and what the guest would pay or get back."""
        booking = self.booking(request, reference)
        query = QuoteQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return invalid_response(query)
        try:
            preview = _change_preview(booking, query.validated_data)
        except BookingError as exc:
            return domain_error_response(exc)
        return Response(_change_preview_data(preview))

    @extend_schema(
        request=StayChangeSerializer,
        responses={200: BookingSerializer, **ERRORS},
        tags=["bookings"],
    )
    def post(self, request: Request, reference: str) -> Response:
        """Change the dates or party size; the price follows, and so does the money."""
        booking = self.booking(request, reference)
        payload = StayChangeSerializer(data=request.data)
        if not payload.is_valid():
            return invalid_response(payload)
        data = payload.validated_data
        try:
            with transaction.atomic():
                preview = _change_preview(booking, data)
                expected = data.get("expected_total")
                if expected is not None and expected != preview.quote.total:
                    return error_response(
                        "price_changed",
                        f"The price is now {preview.quote.total} {preview.quote.currency}.",
                        409,
                        {"expected_total": [str(preview.quote.total)]},
                    )
                booking = booking_modify(
                    booking=booking,
                    check_in=data["check_in"],
                    check_out=data["check_out"],
                    guests_count=data["guests"],
                    actor=f"guest:{reference}",
                )
        except BookingError as exc:
            return domain_error_response(exc)
        return Response(BookingSerializer(booking).data)


def _change_preview(booking: Any, data: dict[str, Any]) -> ChangePreview:
    return booking_change_preview(
        booking=booking,
        check_in=data["check_in"],
        check_out=data["check_out"],
        guests_count=data["guests"],
    )


def _change_preview_data(preview: ChangePreview) -> Any:
    quote = preview.quote
    return ChangePreviewSerializer(
        {
            "check_in": preview.check_in,
            "check_out": preview.check_out,
            "nights": quote.nights,
            "guests_count": preview.guests_count,
            "accommodation": quote.accommodation,
            "cleaning_fee": quote.cleaning_fee,
            "taxes": quote.taxes,
            "total": quote.total,
            "previous_total": preview.previous_total,
            "difference": preview.difference,
            "paid": preview.paid,
            "to_pay": preview.to_pay,
            "to_refund": preview.to_refund,
            "currency": quote.currency,
        }
    ).data


class GuestMessagesView(GuestBookingAPIView):
    @extend_schema(responses={200: MessageSerializer(many=True), **ERRORS}, tags=["bookings"])
    def get(self, request: Request, reference: str) -> Response:
        """The message thread with the host, oldest first."""
        booking = self.booking(request, reference)
        return Response(MessageSerializer(booking.messages.all(), many=True).data)

    @extend_schema(
        request=MessageCreateSerializer,
        responses={201: MessageSerializer, **ERRORS},
        tags=["bookings"],
    )
    def post(self, request: Request, reference: str) -> Response:
        """Write to the host; they get it by email and answer in the admin."""
        booking = self.booking(request, reference)
        payload = MessageCreateSerializer(data=request.data)
        if not payload.is_valid():
            return invalid_response(payload)
        try:
            message = guest_message_post(
                booking=booking, sender=MessageSender.GUEST, body=payload.validated_data["body"]
            )
        except BookingError as exc:
            return domain_error_response(exc)
        return Response(MessageSerializer(message).data, status=status.HTTP_201_CREATED)
