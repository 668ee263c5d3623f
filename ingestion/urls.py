from django.urls import path

from ingestion.views import jobs, reports, schedules, sources, stepper

app_name = "ingestion"

urlpatterns = [
    # The stepper: Configure → Preview → Ingest. `start/` sends the user to the step they are
    # at (the active run's, else Configure).
    path("start/", stepper.home, name="home"),
    path("configure/", sources.configure, name="configure"),
    path("sources/new/", sources.source_new, name="source_new"),
    path("sources/probe/", sources.source_probe, name="source_probe"),
    path("sources/check-upload/", sources.source_check_upload, name="source_check_upload"),
    path("sources/<int:source_id>/edit/", sources.source_edit, name="source_edit"),
    path("sources/<int:source_id>/delete/", sources.source_delete, name="source_delete"),
    path("sources/<int:source_id>/toggle/", sources.source_toggle, name="source_toggle"),
    path("schedules/new/", schedules.schedule_create, name="schedule_create"),
    path("schedules/<int:schedule_id>/toggle/", schedules.schedule_toggle, name="schedule_toggle"),
    path("schedules/<int:schedule_id>/delete/", schedules.schedule_delete, name="schedule_delete"),
    path("preview/", stepper.preview_start, name="preview_start"),
    path("preview/<int:run_id>/", stepper.preview_page, name="preview"),
    path("ingest/", stepper.ingest_start, name="ingest_start"),
    path("ingest/<int:run_id>/", stepper.ingest_page, name="ingest"),
    path("runs/<int:run_id>/items/", stepper.run_items, name="run_items"),
    path("runs/<int:run_id>/retry/", stepper.retry_failed, name="retry_failed"),
    path("runs/<int:run_id>/resume/", stepper.resume, name="resume"),
    path("runs/<int:run_id>/report.json", reports.run_report_json, name="report_json"),
    path("runs/<int:run_id>/report.csv", reports.run_report_csv, name="report_csv"),
    path("jobs/", jobs.job_list, name="jobs"),
    path("jobs/<int:job_id>/", jobs.job_detail, name="job"),
]
