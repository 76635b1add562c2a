from django.urls import path

from . import views

app_name = "queries"

urlpatterns = [
    path("", views.query_list, name="list"),
    path("start/", views.query_start, name="start"),
    path("timezone/", views.set_timezone, name="set_timezone"),
    path("<int:pk>/", views.query_detail, name="detail"),
    path("<int:pk>/progress/", views.query_progress, name="progress"),
    path("<int:pk>/cancel/", views.query_cancel, name="cancel"),
    path(
        "<int:pk>/export/containers.csv",
        views.export_containers,
        {"fmt": "csv"},
        name="export_containers_csv",
    ),
    path(
        "<int:pk>/export/containers.xlsx",
        views.export_containers,
        {"fmt": "xlsx"},
        name="export_containers_xlsx",
    ),
    path("<int:pk>/files/<int:file_id>/", views.query_file, name="file"),
]
