from django.apps import AppConfig


class OpsAppConfig(AppConfig):
    name = "ops_app"
    verbose_name = "Operations"

    def ready(self) -> None:
        # The engine's signals feed the latency histograms; the receivers live here so that
        # neither sessions_app nor queries_app knows about metrics.
        from queries_app.signals import step_finished
        from sessions_app.signals import upstream_call

        from . import recording

        upstream_call.connect(recording.on_upstream_call, dispatch_uid="ops_app.upstream_call")
        step_finished.connect(recording.on_step_finished, dispatch_uid="ops_app.step_finished")
