from django.db import migrations

# The job's long texts compressed by lz4 rather than PostgreSQL's default pglz: a job row
# is wider than the 2 kB past which PostgreSQL compresses its texts, so the listing's raw
# description and the ingesting stage's sanitized description and plain text were each
# compressed by pglz on the way in, the larger part of the CPU a job's write costs after
# its index entries. lz4 compresses and decompresses several times faster, for slightly
# larger values. Texts already stored keep their pglz until rewritten (each value says how
# it is compressed). PostgreSQL 14 or later built with lz4 only; otherwise, and on SQLite,
# nothing changes.
TEXTS = ("raw_description", "description", "description_text", "requirements")

LZ4_AVAILABLE = (
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def _compress(schema_editor, method: str) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(LZ4_AVAILABLE)
        row = cursor.fetchone()
    if not (row and row[0]):
        return
    quote = schema_editor.quote_name
    columns = ", ".join(f"ALTER COLUMN {quote(c)} SET COMPRESSION {method}" for c in TEXTS)
    schema_editor.execute(f"ALTER TABLE ingestion_job {columns}")


def lz4(apps, schema_editor):
    _compress(schema_editor, "lz4")


def default(apps, schema_editor):
    _compress(schema_editor, "default")


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0016_million_fingerprint_company"),
    ]

    operations = [
        migrations.RunPython(lz4, default, elidable=False),
    ]
