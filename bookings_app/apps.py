from django.apps import AppConfig


class BookingsAppConfig(AppConfig):
    name = "bookings_app"
    verbose_name = "Bookings"

    def ready(self) -> None:
        # A booking waits on two reads the query engine makes (its fresh check, then the
        # account's appointments): the engine says when a query ended, a task of ours goes on.
        from queries_app.signals import query_finished

        from . import tasks  # noqa: F401  (imported before the cluster forks its workers)
        from .tasks import on_query_finished

        query_finished.connect(on_query_finished, dispatch_uid="bookings_app.query_finished")
