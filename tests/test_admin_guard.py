"""Staff pages: the admin's list filters and search never answer 500 for a NUL."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse


def changelists() -> list[str]:
    return [
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model in admin.site._registry
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("name", changelists())
@pytest.mark.parametrize("query", ["status__exact=%00", "q=a%00b", "%00=1", "o=%00"])
def test_a_nul_in_an_admin_list_query_is_refused_with_400(admin_client, name, query):
    response = admin_client.get(f"{reverse(name)}?{query}")
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


@pytest.mark.django_db
def test_admin_lists_without_a_nul_still_answer(admin_client):
    for name in changelists():
        assert admin_client.get(f"{reverse(name)}?q=acme").status_code == 200
