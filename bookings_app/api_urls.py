"""/api/v1/bookings/: the bookings' routes of the API (in the `api:` namespace, put together in
`emodal_portal.api_urls`)."""

from django.urls import path

from emodal_portal import ids  # noqa: F401 - registers <id:…>

from . import api

v1 = [
    path("bookings/", api.BookingList.as_view(), name="booking-list"),
    path("bookings/<id:pk>/", api.BookingDetail.as_view(), name="booking-detail"),
    path("bookings/<id:pk>/confirm/", api.BookingConfirm.as_view(), name="booking-confirm"),
]
