"""A source kind is declared once (ingestion.adapters.registry): a toy kind, its adapter in
this module and one registry entry, appears in the form's choices, in the recognizer of
pasted URLs and in a dry-run read, with nothing else touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingestion.adapters import Adapter, Posting, adapter_class, get_adapter, registry
from ingestion.adapters.recognize import recognize_careers_url
from ingestion.fetching import Fetcher
from ingestion.forms import SourceForm
from ingestion.models import Source, SourceKind
from ingestion.views.sources import recognition


class ToyAdapter(Adapter):
    """Boards of a made-up product at jobs.toy.example/<name>: two postings each."""

    kind = "toy"

    @classmethod
    def board_in_url(
        cls, host: str, segments: list[str], query: str
    ) -> tuple[str, dict[str, str]] | None:
        return (segments[0], {}) if host == "jobs.toy.example" and segments else None

    def list_postings(self) -> Iterator[Posting]:
        board = self.source.identifier
        for number in (1, 2):
            yield to_posting({"id": f"{board}-{number}", "name": f"Toy job {number}"})


def to_posting(job: dict[str, str]) -> Posting:
    """One of the toy board's jobs as a Posting (every adapter's mapper has this name)."""
    return Posting(external_id=job["id"], title=job["name"])


TOY = registry.SourceKindEntry(
    "toy",
    "Toy board",
    f"{__name__}.ToyAdapter",
    name="Toy",
    identifier="board name",
    board=True,
)


@pytest.fixture
def toy_kind() -> Iterator[None]:
    registry.register(TOY)
    yield
    registry.unregister(TOY.kind)


def test_a_registered_kind_is_a_choice_of_the_source_form(toy_kind: None) -> None:
    assert ("toy", "Toy board") in SourceForm().fields["kind"].choices


def test_a_registered_kind_is_recognised_from_its_board_url(toy_kind: None) -> None:
    assert recognize_careers_url("https://jobs.toy.example/acme/7") == ("toy", "acme", {})
    assert recognition("jobs.toy.example/acme") == {
        "state": "ok",
        "text": "Recognised: Toy board 'acme'",
    }
    assert registry.board_names() == "Greenhouse, Lever, Ashby or Toy"


def test_a_registered_kind_is_read_in_a_dry_run(toy_kind: None) -> None:
    source = Source(kind="toy", identifier="acme", company="Acme")
    with Fetcher(store=False) as fetcher:
        postings = list(get_adapter(source, fetcher).postings())

    assert [(p.external_id, p.title) for p in postings] == [
        ("acme-1", "Toy job 1"),
        ("acme-2", "Toy job 2"),
    ]


def test_an_unregistered_kind_is_unknown_everywhere() -> None:
    assert "toy" not in registry.kinds()
    assert ("toy", "Toy board") not in SourceForm().fields["kind"].choices
    assert recognize_careers_url("https://jobs.toy.example/acme") is None
    with pytest.raises(ValueError, match="Unknown source kind 'toy'"):
        adapter_class("toy")


def test_a_kind_cannot_be_registered_twice(toy_kind: None) -> None:
    with pytest.raises(ValueError, match="registered already"):
        registry.register(TOY)
    with pytest.raises(ValueError, match="declared in KINDS"):
        registry.unregister("greenhouse")


def test_each_declared_kind_names_its_adapter_and_is_a_model_choice() -> None:
    for entry in registry.KINDS:
        assert adapter_class(entry.kind).kind == entry.kind
    assert SourceKind.choices == registry.choices()
