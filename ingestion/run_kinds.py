"""The run kinds ingestion adds to the runs app: their values, for the modules that tell one
kind from the other without importing the pipeline. The kinds are declared, with their
labels and executors, in ingestion.pipeline.orchestrator (runs.executors.register)."""

# A dry run: what an ingest would do now; writes RunItems, never a Job.
PREVIEW = "preview"
# Reads the sources and writes their postings as jobs.
INGEST = "ingest"
