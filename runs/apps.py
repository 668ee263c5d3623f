from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from runs import listener, workloads  # noqa: F401  (registers the diagnostic executor)

        listener.install_resilient_listener()
