"""Pure functions that turn what a source says into Intake's canonical values, one topic a
module: safe HTML (`sanitize`), plain text (`plaintext`), employment types (`employment`),
workplace and location (`workplace`), salaries (`salary`), datetimes (`dates`) and the content
hash and the raw record's (`hashing`).

Nothing here touches the database or the network; every function takes junk without raising
and answers "unknown" ("" or None) instead, because a posting with one odd field is still a
posting."""

from ingestion.normalize.dates import MAX_YEAR, MIN_YEAR, parse_datetime
from ingestion.normalize.employment import EMPLOYMENT_TYPES, normalize_employment_type
from ingestion.normalize.hashing import content_hash, raw_hasher
from ingestion.normalize.plaintext import fingerprint_text, html_to_text, sanitized_html_to_text
from ingestion.normalize.salary import parse_salary
from ingestion.normalize.sanitize import sanitize_html, sanitize_html_as_written
from ingestion.normalize.workplace import WORKPLACE_TYPES, normalize_location, normalize_workplace

__all__ = [
    "EMPLOYMENT_TYPES",
    "MAX_YEAR",
    "MIN_YEAR",
    "WORKPLACE_TYPES",
    "content_hash",
    "fingerprint_text",
    "html_to_text",
    "normalize_employment_type",
    "normalize_location",
    "normalize_workplace",
    "parse_datetime",
    "parse_salary",
    "raw_hasher",
    "sanitize_html",
    "sanitize_html_as_written",
    "sanitized_html_to_text",
]
