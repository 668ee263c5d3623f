from django.apps import AppConfig


class ApiConfig(AppConfig):
    # The JSON API at /api/v1/: tokens, auth, problem details and the routers that expose
    # the runs and ingestion services. Neither of those apps imports this one.
    name = "api"
    verbose_name = "API"

    def ready(self) -> None:
        # The API's run poll is answered by the status poll's fast path too: the plug-in
        # seam runs.status_poll.register, since runs never imports the API.
        from api.run_poll import ApiRunPoll
        from runs import status_poll

        status_poll.register(ApiRunPoll())
