from django.apps import AppConfig


class ApiAppConfig(AppConfig):
    name = "api_app"
    verbose_name = "API and webhooks"

    def ready(self) -> None:
        # Webhooks hear what the engine and the container board announce; neither knows about
        # webhooks. The schema extensions register themselves on import.
        from queries_app.events import events_recorded
        from queries_app.signals import query_finished

        from . import schema  # noqa: F401
        from .webhooks import events

        query_finished.connect(events.on_query_finished, dispatch_uid="api_app.query_finished")
        events_recorded.connect(events.on_events_recorded, dispatch_uid="api_app.events_recorded")
