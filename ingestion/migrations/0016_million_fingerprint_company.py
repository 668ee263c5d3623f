import zlib

from django.db import migrations, models

# Each fingerprint takes its job's company key, computed in Python as
# ingestion.dedupe.company_key does (a copy: a migration must not change with the code),
# one UPDATE per company of the owners' fingerprinted jobs.
_COMPANIES = (
    "SELECT DISTINCT j.owner_id, j.company FROM ingestion_job j "
    "JOIN ingestion_jobfingerprint f ON f.job_id = j.id"
)
_FILL = (
    "UPDATE ingestion_jobfingerprint SET company_key = %s WHERE job_id IN "
    "(SELECT id FROM ingestion_job WHERE owner_id = %s AND company = %s)"
)


def company_key(company):
    return zlib.crc32(company.strip().casefold().encode()) & 0x7FFFFFFF


def fill_company_keys(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_COMPANIES)
        companies = cursor.fetchall()
        for owner_id, company in companies:
            cursor.execute(_FILL, [company_key(company), owner_id, company])


class Migration(migrations.Migration):

    dependencies = [
        ("ingestion", "0015_job_statistics_targets"),
    ]

    # The old indexes go first: the keys are filled without updating them.
    operations = [
        *(
            migrations.RemoveIndex(model_name="jobfingerprint", name=f"ingestion_fingerprint_band{band}")
            for band in range(4)
        ),
        migrations.AddField(
            model_name="jobfingerprint",
            name="company_key",
            field=models.IntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunPython(fill_company_keys, migrations.RunPython.noop),
        *(
            migrations.AddIndex(
                model_name="jobfingerprint",
                index=models.Index(
                    fields=["owner", f"band{band}", "company_key"],
                    name=f"ingestion_fingerprint_b{band}_co",
                ),
            )
            for band in range(4)
        ),
    ]
