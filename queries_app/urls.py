from django.urls import path

from emodal_portal import ids  # noqa: F401 - registers <id:…>
from portal.timezones import set_timezone

from . import views

app_name = "queries"

urlpatterns = [
    path("", views.query_list, name="list"),
    path("start/", views.query_start, name="start"),
    path("timezone/", set_timezone, name="set_timezone"),
    path("<id:pk>/", views.query_detail, name="detail"),
    path("<id:pk>/progress/", views.query_progress, name="progress"),
    path("<id:pk>/cancel/", views.query_cancel, name="cancel"),
    path(
        "<id:pk>/export/containers.csv",
        views.export_containers,
        {"fmt": "csv"},
        name="export_containers_csv",
    ),
    path(
        "<id:pk>/export/containers.xlsx",
        views.export_containers,
        {"fmt": "xlsx"},
        name="export_containers_xlsx",
    ),
    path("<id:pk>/files/<id:file_id>/", views.query_file, name="file"),
]
