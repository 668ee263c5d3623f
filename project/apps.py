from django.apps import AppConfig


class ProjectConfig(AppConfig):
    # Wiring only: holds the `start` supervisor command and settings helpers.
    name = "project"
    verbose_name = "Intake"
