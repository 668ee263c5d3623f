import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

django_application = get_asgi_application()

# After Django is set up: it reads the settings when called.
from api.problems import too_large_refusal  # noqa: E402
from ingestion.upload_limits import BodyLimit  # noqa: E402

application = BodyLimit(django_application, refusal=too_large_refusal)
