"""The pages: one module per area (stepper, sources, jobs, runs, reports), thin views over
ingestion.services and ingestion.selectors."""
