from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from runs import stream, workloads  # noqa: F401  (registers the diagnostic executor)

        stream.install_resilient_listener()
