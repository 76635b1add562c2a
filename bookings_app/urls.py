from django.urls import path

from emodal_portal import ids  # noqa: F401 - registers <id:…>

from . import views

app_name = "bookings"

urlpatterns = [
    path("", views.booking_list, name="list"),
    path("start/", views.booking_start, name="start"),
    path("<id:pk>/", views.booking_detail, name="detail"),
    path("<id:pk>/confirm/", views.booking_confirm, name="confirm"),
    path("<id:pk>/recheck/", views.booking_recheck, name="recheck"),
    path("<id:pk>/cancel/", views.booking_cancel, name="cancel"),
]
