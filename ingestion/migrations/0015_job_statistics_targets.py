from django.db import migrations

# Columns of the job table that no query filters, joins, groups or sorts on: ANALYZE keeps no
# statistics for them (a target of 0). A listing analyzes the table when its statistics are
# stale (ingestion.store.analyze_if_stale), and each analyzed column costs a sort of the
# whole sample, so the wide and never-searched columns made most of that cost. The columns
# the listing, the expiry, the chunks, the jobs pages and the admin's filters and searches
# read are analyzed as before. PostgreSQL only.
UNANALYZED = (
    "url",
    "department",
    "raw_description",
    "needs_detail",
    "description",
    "description_text",
    "requirements",
    "valid_through",
    "salary_min",
    "salary_max",
    "salary_currency",
    "salary_period",
    "salary_text",
    "simhash",
    "content_hash",
    "raw_hash",
    "error_message",
    "expired_at",
    "last_seen_at",
    "created_at",
    "updated_at",
)


def _targets(schema_editor, target: int) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    columns = ", ".join(f"ALTER COLUMN {quote(c)} SET STATISTICS {target}" for c in UNANALYZED)
    schema_editor.execute(f"ALTER TABLE ingestion_job {columns}")


def unanalyzed(apps, schema_editor):
    _targets(schema_editor, 0)


def analyzed(apps, schema_editor):
    _targets(schema_editor, -1)


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0014_job_seen"),
    ]

    operations = [
        migrations.RunPython(unanalyzed, analyzed, elidable=False),
    ]
