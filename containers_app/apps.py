from django.apps import AppConfig


class ContainersAppConfig(AppConfig):
    name = "containers_app"
    verbose_name = "Containers board"

    def ready(self) -> None:
        # The engine tells who listens that a query ended; the board is brought up to date by
        # a task of its own (never in the query's path).
        from queries_app.signals import query_finished

        from . import tasks  # noqa: F401  (imported before the cluster forks its workers)
        from .receivers import on_query_finished

        query_finished.connect(on_query_finished, dispatch_uid="containers_app.query_finished")
