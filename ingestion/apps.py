from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from ingestion.pipeline import orchestrator  # noqa: F401  (registers preview, ingest)
        from ingestion.run_kinds import INGEST, PREVIEW
        from runs import executors

        # Previews and ingests are shown on the stepper's steps, not the generic run page.
        executors.register_page(PREVIEW, "ingestion:preview")
        executors.register_page(INGEST, "ingestion:ingest")
