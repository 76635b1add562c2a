from django.apps import AppConfig


class QueriesAppConfig(AppConfig):
    name = "queries_app"
    verbose_name = "E-Modal queries"

    def ready(self) -> None:
        # Task code is imported once here, before the task cluster forks its workers, rather
        # than by every worker on its first task (a delay of a tenth of a second or more,
        # for all of them at once, when a batch starts).
        # The sessions app does not know about queries: the engine tells it which accounts
        # have work waiting (their browser is kept), and wakes queries when a browser is freed.
        from sessions_app.services import register_demand_provider
        from sessions_app.signals import browser_freed

        from . import checks, kinds, tasks  # noqa: F401  (system checks; the kinds register)
        from .engine import accounts_with_live_queries, on_browser_freed

        register_demand_provider(accounts_with_live_queries)
        browser_freed.connect(on_browser_freed, dispatch_uid="queries_app.on_browser_freed")
