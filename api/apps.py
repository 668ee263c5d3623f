from django.apps import AppConfig


class ApiConfig(AppConfig):
    # The JSON API at /api/v1/: tokens, auth, problem details and the routers that expose
    # the runs and ingestion services. Neither of those apps imports this one.
    name = "api"
    verbose_name = "API"
