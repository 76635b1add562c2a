from django.apps import AppConfig


class QueriesAppConfig(AppConfig):
    name = "queries_app"
    verbose_name = "E-Modal queries"

    def ready(self) -> None:
        # Task code is imported once here, before the task cluster forks its workers, rather
        # than by every worker on its first task (a delay of a tenth of a second or more,
        # for all of them at once, when a batch starts).
        from . import checks, tasks  # noqa: F401  (checks: registers the system checks)
