"""/api/: the API app's routes and those of the apps that serve their own resources under
/api/v1/ (bookings), in one namespace (`api:`). Put together here, where the apps are wired,
so that no app imports the URL conf of another (the bookings API uses the API app's errors
and pagination; the API app knows nothing of bookings)."""

from api_app.urls import api_urlpatterns
from api_app.urls import v1 as api_v1
from bookings_app.api_urls import v1 as bookings_v1

app_name = "api"

urlpatterns = api_urlpatterns([*api_v1, *bookings_v1])
