from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from api.main import PREFIX, api
from api.problems import Problem, problem_response

app_name = "api_pages"


def unknown_endpoint(request: HttpRequest, rest: str = "") -> HttpResponse:
    return problem_response(
        request,
        Problem(404, "There is no such endpoint; see /api/v1/docs for the ones there are."),
    )


# Mounted at the site's root (project/urls.py): the API, then a problem for any other path
# under its prefix (Django's 404 would be an HTML page).
api_patterns = [
    path(PREFIX.lstrip("/"), api.urls),
    re_path(r"^api/(?P<rest>.*)$", unknown_endpoint, name="api_unknown"),
]
