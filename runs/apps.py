from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from runs import feed, workloads  # noqa: F401  (registers the diagnostic executor)

        feed.install_resilient_listener()
