"""The guest API. Views validate input, call a service, render output; nothing else."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import transaction
from django.db.models import Count, QuerySet, Window
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.pagination import PageNumberPagination
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
    PropertySearchQuerySerializer,
    PropertySearchResultSerializer,
    QuoteQuerySerializer,
    QuoteSerializer,
    StayChangeSerializer,
    property_search_representation,
    quote_representation,
)
from bookings.choices import BookingSource, MessageSender
from bookings.errors import BookingError
from bookings.pricing import (
    check_stay_length,
    lines_with_retained,
    quote_many,
    quote_stay,
    season_of_night,
)
from bookings.selectors import bookable_properties, property_availability
from bookings.services import (
    ChangePreview,
    booking_cancel,
    booking_cancel_preview,
    booking_change_preview,
    booking_create,
    booking_modify,
    guest_booking_status,
    guest_may_change,
    guest_message_post,
    guest_token_issue,
)
from pms.api.errors import domain_error_response, error_response
from pms.api.guest import ERRORS, GuestBookingAPIView, invalid_response
from pms.api.schemas import ErrorSerializer
from pms.models import Property
from pms.pipeline.log_context import bind_tenant
from pms.services import guest_get_or_create
from tenants.selectors import tenant_by_slug


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
        """The price of a stay, line by line: nights (seasons, weekends, the manager's
        per-date overrides), extra guests, the weekly or monthly discount, cleaning, taxes.

        A stay shorter or longer than the property (or the check-in night's season)
        takes is refused with ``too_few_nights`` / ``too_many_nights``.
        """
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
        check_in, check_out = data["check_in"], data["check_out"]
        try:
            check_stay_length(
                property=prop,
                season=season_of_night(property=prop, night=check_in),
                nights=(check_out - check_in).days,
            )
        except BookingError as exc:
            return domain_error_response(exc)
        quote = quote_stay(
            property=prop, check_in=check_in, check_out=check_out, guests=data["guests"]
        )
        days = property_availability(property=prop, start=check_in, end=check_out)
        return Response(quote_representation(quote, available=all(free for _, free in days)))


class CountingPaginator(Paginator):
    """One query a page: its rows, each carrying the total (``COUNT(*) OVER ()``).

    Django's paginator runs a COUNT and then the page: the search's availability SQL
    twice. Past the last page there are no rows, hence no total: that page is empty
    (a 404), the first page of nothing is 0.
    """

    def page(self, number: Any) -> Page:
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer.") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1.")
        bottom = (number - 1) * self.per_page
        queryset: Any = self.object_list
        rows = list(queryset.annotate(matching=Window(Count("*")))[bottom : bottom + self.per_page])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results.")
        self.__dict__["count"] = rows[0].matching if rows else 0  # the cached_property
        return Page(rows, number, self)


class SearchPagination(PageNumberPagination):
    django_paginator_class = CountingPaginator
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class PropertySearchView(generics.ListAPIView[Property]):
    """The booking engine's search: one tenant's properties, and what a stay costs at each."""

    authentication_classes: list[Any] = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [AnonymousClientThrottle]
    serializer_class = PropertySearchResultSerializer
    pagination_class = SearchPagination

    @extend_schema(
        parameters=[PropertySearchQuerySerializer],
        responses={200: PropertySearchResultSerializer(many=True), **ERRORS},
        tags=["properties"],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A tenant's active properties, by name, paginated (``page``, ``page_size`` up to 100).

        With ``check_in`` and ``check_out`` (both or neither), only the properties that
        can take the stay for ``guests`` (free, long and short enough, within the
        horizon), each with its quote. Booking checks availability again. Errors:
        ``incomplete_dates``, ``invalid_dates``, ``past_date``, ``invalid`` (400),
        ``not_found`` (404: no such tenant, or no such page).
        """
        return self.list(request, *args, **kwargs)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = PropertySearchQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return invalid_response(query)
        data = query.validated_data
        check_in, check_out = data.get("check_in"), data.get("check_out")
        if (check_in is None) != (check_out is None):
            missing = "check_out" if check_out is None else "check_in"
            return error_response(
                "incomplete_dates",
                "Give both check_in and check_out, or neither.",
                400,
                {missing: ["Required with the other date."]},
            )
        today = timezone.localdate()
        if check_in is not None and check_out is not None:
            if check_out <= check_in:
                return error_response(
                    "invalid_dates",
                    "Check-out must be after check-in.",
                    400,
                    {"check_out": ["Must be after check-in."]},
                )
            if check_in < today:
                return error_response(
                    "past_date",
                    "Check-in cannot be in the past.",
                    400,
                    {"check_in": ["In the past."]},
                )
        tenant = tenant_by_slug(self.kwargs["slug"])
        if tenant is None:
            return error_response("not_found", "No such tenant.", 404)
        bind_tenant(tenant.pk)
        queryset: QuerySet[Property] = bookable_properties(
            tenant=tenant,
            check_in=check_in,
            check_out=check_out,
            guests=data["guests"],
            today=today,
        )
        page = self.paginate_queryset(queryset)  # one query: the page and the total
        assert page is not None  # pagination_class is set
        _attach_quotes(page, check_in=check_in, check_out=check_out, guests=data["guests"])
        # PropertySearchResultSerializer's output (the schema's), without DRF's per-field cost.
        return self.get_paginated_response([property_search_representation(p) for p in page])


def _attach_quotes(
    properties: list[Property], *, check_in: date | None, check_out: date | None, guests: int
) -> None:
    """Give each property its ``search_quote`` (None without dates): one query in all."""
    quotes = (
        quote_many(properties, check_in=check_in, check_out=check_out, guests=guests)
        if check_in is not None and check_out is not None
        else {}
    )
    for prop in properties:
        quote = quotes.get(prop.pk)
        # Only properties that can take the stay are listed: each is available.
        prop.search_quote = (  # type: ignore[attr-defined]
            quote_representation(quote, available=True) if quote else None
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
        """Book a stay. The answer carries the secret token that opens the booking.

        On a property in request-to-book mode the booking is ``requested``: the dates are
        held, and the host accepts (``confirmed``, payment is asked then) or declines it.
        """
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
                    status=guest_booking_status(property=prop),
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
            guest_may_change(booking)
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
                if expected is not None and expected != preview.total:
                    return error_response(
                        "price_changed",
                        f"The price is now {preview.total} {preview.quote.currency}.",
                        409,
                        {"expected_total": [str(preview.total)]},
                    )
                booking = booking_modify(
                    booking=booking,
                    check_in=data["check_in"],
                    check_out=data["check_out"],
                    guests_count=data["guests"],
                    actor=f"guest:{reference}",
                    under_policy=True,
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
            "lines": lines_with_retained(quote, preview.retained),
            "accommodation": quote.accommodation + preview.retained,
            "cleaning_fee": quote.cleaning_fee,
            "taxes": quote.taxes,
            "retained": preview.retained,
            "total": preview.total,
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
