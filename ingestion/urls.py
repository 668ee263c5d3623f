from django.urls import path

from ingestion import views

app_name = "ingestion"

urlpatterns = [
    path("runs/<int:run_id>/report.json", views.run_report_json, name="report_json"),
    path("runs/<int:run_id>/report.csv", views.run_report_csv, name="report_csv"),
]
