"""Forms of the Configure step: the quick "paste a careers URL" form and the full source form.

Forms only collect and shape input; ingestion.services decides (kind recognition, identifier
cleaning, duplicates) and its SourceError is put back on the field it is about."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from ingestion.adapters import registry
from ingestion.adapters.lever import LeverAdapter
from ingestion.adapters.recognize import recognize_careers_url
from ingestion.models import Source
from ingestion.upload_limits import size_text, too_big_message

REGION_CHOICES = [("", "Global (jobs.lever.co)"), ("eu", "EU (jobs.eu.lever.co)")]


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def kind_choices() -> list[tuple[str, str]]:
    """The registered kinds, read when a form is built (a kind registered later is one)."""
    return [("", "Recognise from the URL"), *registry.choices()]


def words_text(values: list[str]) -> str:
    return ", ".join(values)


class QuickAddForm(forms.Form):
    """The Configure page's main path: one pasted URL, the company optional."""

    url = forms.CharField(
        label="Careers URL",
        max_length=2000,
        widget=forms.TextInput(
            attrs={"placeholder": "https://boards.greenhouse.io/acme", "autocomplete": "url"}
        ),
        error_messages={"required": "Paste a careers page or job board URL."},
    )
    company = forms.CharField(
        label="Company (optional)",
        max_length=200,
        required=False,
        help_text="When left empty: the board's name, or the company the page's postings name "
        "(its host until they are read).",
    )


class SourceForm(forms.Form):
    """The full form. With `source` (editing) kind, identifier and URL are not fields: a
    different board is a different source."""

    url = forms.CharField(
        label="Careers URL",
        max_length=2000,
        required=False,
        help_text=f"A {registry.board_names()} board URL fills in kind and identifier; "
        "any other page is read for its JSON-LD postings.",
        widget=forms.TextInput(attrs={"placeholder": "https://jobs.lever.co/acme"}),
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=kind_choices,
    )
    company = forms.CharField(
        label="Company",
        max_length=200,
        required=False,
        help_text="When left empty: the board's name, the company a page's postings name (its "
        "host until they are read), or the one a file's rows name. A file's rows with a "
        "company column keep their own.",
    )
    identifier = forms.CharField(
        label="Identifier",
        max_length=500,
        required=False,
        help_text=f"{_first_upper(registry.identifier_help())}. Uploads default to the file name.",
    )
    lever_region = forms.ChoiceField(label="Lever region", required=False, choices=REGION_CHOICES)
    upload = forms.FileField(
        label="File",
        required=False,
        # Not ClearableFileInput: its "upload-clear" box makes the cleaned value False, which
        # the views would take for a file. A source's file is replaced, never cleared.
        widget=forms.FileInput,
        help_text="CSV, JSON or JSONL: postings for an uploaded-file source, up to 1,000 "
        "posting URLs for a URL-list source.",
    )
    save_anyway = forms.BooleanField(required=False)
    include_keywords = forms.CharField(
        label="Include keywords",
        required=False,
        help_text="Comma-separated; a posting must mention one of them.",
    )
    exclude_keywords = forms.CharField(
        label="Exclude keywords",
        required=False,
        help_text="Comma-separated; a posting mentioning any of them is left out.",
    )
    locations = forms.CharField(
        label="Locations", required=False, help_text="Comma-separated, e.g. Berlin, Remote EU."
    )
    remote_only = forms.BooleanField(label="Remote only", required=False)
    enabled = forms.BooleanField(
        label="Enabled (selected for runs by default)", required=False, initial=True
    )

    def __init__(self, *args: Any, source: Source | None = None, **kwargs: Any) -> None:
        self.source = source
        if source is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "company": source.company,
                "lever_region": source.options.get("region", ""),
                "include_keywords": words_text(source.include_keywords),
                "exclude_keywords": words_text(source.exclude_keywords),
                "locations": words_text(source.locations),
                "remote_only": source.remote_only,
                "enabled": source.enabled,
            }
        super().__init__(*args, **kwargs)
        if "upload" in self.fields:
            limit = size_text(settings.INTAKE_UPLOAD_MAX_BYTES)
            self.fields["upload"].help_text += f" At most {limit}."
        if source is not None:
            for name in ("url", "kind", "identifier"):
                del self.fields[name]
            self.fields["company"].required = True
            self.fields["company"].help_text = ""
            if source.kind != LeverAdapter.kind:
                del self.fields["lever_region"]
            if not registry.reads_upload(source.kind):
                del self.fields["upload"]
                del self.fields["save_anyway"]
            else:
                self.fields["upload"].label = "Replace the file"

    @property
    def takes_upload(self) -> bool:
        return "upload" in self.fields

    @property
    def upload_max_bytes(self) -> int:
        """The largest file accepted: the page refuses a larger one before sending it."""
        return settings.INTAKE_UPLOAD_MAX_BYTES

    @property
    def upload_too_big(self) -> str:
        """What follows a file's name when it is larger than that."""
        return too_big_message().removeprefix("The file ")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.source is None and not data.get("url") and not data.get("kind"):
            self.add_error("kind", "Choose a kind, or paste a careers URL above.")
        return data

    def create_fields(self) -> dict[str, Any]:
        """services.source_create's arguments from the valid form, its file aside."""
        data = self.cleaned_data
        kind = data["kind"] or None
        recognized = recognize_careers_url(data["url"]) if data["url"] else None
        lever = (recognized[0] if recognized else kind) == LeverAdapter.kind
        return {
            "kind": kind,
            "url": data["url"] or None,
            "company": data["company"],
            "identifier": data["identifier"],
            "options": {"region": "eu"} if lever and data["lever_region"] == "eu" else {},
            "enabled": data["enabled"],
            **self.filters(),
        }

    def update_fields(self) -> dict[str, Any]:
        """services.source_update's arguments from the valid form of `self.source`, its file
        aside."""
        assert self.source is not None
        data = self.cleaned_data
        fields: dict[str, Any] = {
            "company": data["company"],
            "enabled": data["enabled"],
            **self.filters(),
        }
        if "lever_region" in self.fields:
            options = {k: v for k, v in self.source.options.items() if k != "region"}
            if data["lever_region"]:
                options["region"] = data["lever_region"]
            fields["options"] = options
        return fields

    def filters(self) -> dict[str, Any]:
        """The filter fields as services.source_create/source_update take them (comma-separated
        text is split there)."""
        data = self.cleaned_data
        return {
            "include_keywords": data["include_keywords"],
            "exclude_keywords": data["exclude_keywords"],
            "locations": data["locations"],
            "remote_only": data["remote_only"],
        }


_FIELD_HINTS = (
    ("company", "company"),
    ("uploaded file", "upload"),
    ("file", "upload"),
    ("kind", "kind"),
    ("already have", "identifier"),
)


def error_field(message: str, form: SourceForm | QuickAddForm) -> str | None:
    """The form field a SourceError is about (its message names it), None for the form."""
    lowered = message.lower()
    if isinstance(form, QuickAddForm):
        return "company" if "company" in lowered else "url"
    if form.cleaned_data.get("url") and "company" not in lowered:
        return "url"
    for hint, field in _FIELD_HINTS:
        if hint in lowered and field in form.fields:
            return field
    return "identifier" if "identifier" in form.fields else None
