"""The project's own URL wiring around third-party views."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("prefix", ["/django-rq/", "/admin/django_rq/dashboard/"])
@pytest.mark.parametrize("token", ["²", "ключ", "tokenβ"])
def test_a_non_ascii_stats_token_is_refused_like_a_wrong_one(prefix, token):
    # django-rq compares it with hmac.compare_digest, which raised TypeError: a 500 for anyone.
    response = Client().get(f"{prefix}stats.json/{token}/")
    assert response.status_code == 401
    assert response.json()["error"] is True


@pytest.mark.parametrize("prefix", ["/django-rq/", "/admin/django_rq/dashboard/"])
def test_other_stats_requests_still_reach_django_rq(prefix, admin_user, redis_client):
    assert Client().get(f"{prefix}stats.json/wrong/").status_code == 401
    staff = Client()
    staff.force_login(admin_user)
    response = staff.get(f"{prefix}stats.json/anything/")
    assert response.status_code == 200 and "queues" in response.json()
