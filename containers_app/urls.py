from django.urls import path

from emodal_portal import ids  # noqa: F401 - registers <id:…>

from . import views

app_name = "containers"

urlpatterns = [
    path("", views.board, name="board"),
    path("export/containers.csv", views.export_board, {"fmt": "csv"}, name="export_csv"),
    path("export/containers.xlsx", views.export_board, {"fmt": "xlsx"}, name="export_xlsx"),
    path("schedules/", views.schedule_add, name="schedule_add"),
    path("schedules/<id:pk>/pause/", views.schedule_pause, name="schedule_pause"),
    path("schedules/<id:pk>/delete/", views.schedule_delete, name="schedule_delete"),
    path("watch/<id:pk>/", views.watch, name="watch"),
    path("<str:number>/", views.container_detail, name="detail"),
]
