import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

django_application = get_asgi_application()

# After Django is set up: it reads the settings when called.
from ingestion.upload_limits import BodyLimit  # noqa: E402

application = BodyLimit(django_application)
