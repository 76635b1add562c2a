from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("", views.alert_settings, name="alerts"),
]
