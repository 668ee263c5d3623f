import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """UploadChunk becomes UploadPart: "chunk" names the jobs an RQ job processes, and an
    uploaded file's pieces are its parts everywhere else. The rows are kept (the table is
    renamed, not rebuilt)."""

    dependencies = [
        ("ingestion", "0007_workchunk_done_count"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="uploadchunk", name="ingestion_uploadchunk_seq"),
        migrations.RenameModel(old_name="UploadChunk", new_name="UploadPart"),
        migrations.AlterField(
            model_name="uploadpart",
            name="source",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="upload_parts",
                to="ingestion.source",
            ),
        ),
        migrations.AddConstraint(
            model_name="uploadpart",
            constraint=models.UniqueConstraint(
                fields=("source", "seq"), name="ingestion_uploadpart_seq"
            ),
        ),
    ]
