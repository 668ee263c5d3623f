from django.urls import path

from runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("diagnostic/", views.run_start_diagnostic, name="start_diagnostic"),
    path("<int:run_id>/", views.run_detail, name="detail"),
    path("<int:run_id>/status/", views.run_status, name="status"),
    path("<int:run_id>/abort/", views.run_abort, name="abort"),
    path("<int:run_id>/events/", views.run_events, name="events"),
    path("<int:run_id>/stream/", views.run_stream, name="stream"),
    path("<int:run_id>/stream/grip-next/", views.run_stream_grip_next, name="grip_next"),
]
