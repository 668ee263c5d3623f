from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django_rq import stats_views as rq_stats_views

from api.urls import api_patterns
from project import views as project_views


def rq_stats_json(request: HttpRequest, token: str | None = None) -> HttpResponse:
    """django-rq's stats.json/<token>, minus its 500: it compares the token with
    hmac.compare_digest, which raises TypeError for a non-ASCII str (its URL takes any word
    character). Such a token is refused here as a wrong one is."""
    if token and not token.isascii():
        return JsonResponse({"error": True, "description": "Invalid token."}, status=401)
    return rq_stats_views.stats_json(request, token)


# Matched before django-rq's own patterns, at both places it is mounted: its regex as it is
# (the unescaped dot included), so that every URL it takes comes here first.
_RQ_STATS_TOKEN = r"stats.json/(?P<token>[\w]+)?/?$"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="ingestion:home", permanent=False)),
    # Browsers (and pages without the icon link, such as django-rq's) ask for /favicon.ico.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("healthz", project_views.healthz, name="healthz"),
    path("metrics", project_views.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    *api_patterns,
    path("account/", include("api.urls")),
    path("runs/", include("runs.urls")),
    path("", include("ingestion.urls")),
    re_path(r"^admin/django_rq/dashboard/" + _RQ_STATS_TOKEN, rq_stats_json, name="rq_admin_stats"),
    path("admin/", admin.site.urls),
    re_path(r"^django-rq/" + _RQ_STATS_TOKEN, rq_stats_json, name="rq_stats"),
    path("django-rq/", include("django_rq.urls")),
]
