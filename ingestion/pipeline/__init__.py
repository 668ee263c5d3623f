"""The ingestion pipeline, one module per stage; `orchestrator` calls them in order.

preview:  list (adapters) → filter → diff against stored jobs → RunItems     (no Job writes)
ingest:   list → filter → diff → upsert new/updated as pending → expire vanished
          → chunks of pending jobs, each its own RQ job: detail, normalize, sanitize,
            simhash, near-duplicate check → ready | skipped | error
          → the last chunk writes the summary and finishes the run
"""
