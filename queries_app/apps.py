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
        # And the stop of an account's logins is recorded as its event (the one receiver of
        # the session layer that records an event: it does not know the outbox).
        from sessions_app.services import register_demand_provider
        from sessions_app.signals import browser_freed, logins_stopped

        from . import checks, kinds, tasks  # noqa: F401  (system checks; the kinds register)
        from .engine import accounts_with_live_queries, on_browser_freed
        from .events import on_logins_stopped

        register_demand_provider(accounts_with_live_queries)
        browser_freed.connect(on_browser_freed, dispatch_uid="queries_app.on_browser_freed")
        logins_stopped.connect(on_logins_stopped, dispatch_uid="queries_app.logins_stopped")
