from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from ingestion import vocabulary
        from ingestion.pipeline import orchestrator  # noqa: F401  (registers preview, ingest)
        from ingestion.run_kinds import INGEST, PREVIEW
        from runs import executors

        # Previews and ingests are shown on the stepper's steps, not the generic run page,
        # with their counters in the outcome words.
        for kind, url_name in ((PREVIEW, "ingestion:preview"), (INGEST, "ingestion:ingest")):
            executors.register_page(kind, url_name)
            executors.register_counters(kind, vocabulary.run_counters)
