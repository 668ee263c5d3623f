from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from api import PREFIX, views
from api.main import api
from api.problems import Problem, problem_response

app_name = "api_pages"

# The tokens page, under the site's own namespace (included at /account/).
urlpatterns = [
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
]


@csrf_exempt  # a problem for any method: no form is behind it
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
