from django.apps import AppConfig


class ApiAppConfig(AppConfig):
    name = "api_app"
    verbose_name = "API and webhooks"

    def ready(self) -> None:
        # The schema extensions register themselves on import. (Webhooks are sent for the
        # outbox's events by the notifications dispatcher.)
        from portal.errors import answer_errors_under

        from . import errors, schema  # noqa: F401

        answer_errors_under(errors.API_PREFIX, errors.ANSWERS)
