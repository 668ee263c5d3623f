from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from ingestion.simhash import (
    bands,
    company_boilerplate,
    hamming,
    learn_boilerplate,
    paragraph_fingerprints,
    simhash,
    simhash_many,
    simhash_many_sized,
    simhash_reference,
    to_signed,
    to_unsigned,
    tokenize,
)
from ingestion.simhash import text as simhash_text

_VOCABULARY = (
    "we build data platform logistics teams plan move track freight engineer design python "
    "routing service customer growth benefits salary equity remote office team product sales "
    "straße café naïve 東京 über résumé — don’t “quoted” • bullet co-op 401k q3 x_y"
)
WORDS = _VOCABULARY.split()


def random_texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        lines = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 25)))
            for _ in range(rng.randint(0, 10))
        ]
        texts.append("\n".join(lines))
    return texts + ["", "one", "two words", "exactly three words", "...", "Ünïcode ß — Straße"]


def test_the_vectorized_simhash_equals_the_reference() -> None:
    texts = random_texts(300)

    assert simhash_many(texts) == [simhash_reference(t) for t in texts]


def test_the_vectorized_simhash_equals_the_reference_with_boilerplate() -> None:
    texts = random_texts(300)
    shared = ["about us we build the data platform for freight", "benefits salary equity remote"]
    texts = [f"{shared[0]}\n{t}\n{shared[1]}" if i % 2 else t for i, t in enumerate(texts)]
    boilerplate = frozenset(company_boilerplate(texts))

    assert boilerplate
    assert simhash_many(texts, boilerplate=boilerplate) == [
        simhash_reference(t, boilerplate=boilerplate) for t in texts
    ]


def test_texts_beyond_one_numpy_pass_are_hashed_in_several_and_stay_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ingestion.simhash import vectorized as module

    texts = random_texts(300)
    expected = [simhash_reference(t) for t in texts]
    passes: list[int] = []
    one_pass = module._simhash_parts
    monkeypatch.setattr(module, "_PASS_BYTES", 2_000)
    monkeypatch.setattr(
        module, "_simhash_parts", lambda parts: passes.append(len(parts)) or one_pass(parts)
    )

    assert simhash_many(texts) == expected
    assert len(passes) > 10 and sum(passes) == len(texts)


def test_a_text_longer_than_the_fast_counters_hold_is_still_exact() -> None:
    rng = random.Random(3)
    text = " ".join(rng.choice(WORDS) for _ in range(70_000))  # > 65,535 shingles

    assert simhash(text) == simhash_reference(text)


def test_single_and_batch_agree() -> None:
    texts = random_texts(20)

    assert [simhash(t) for t in texts] == simhash_many(texts)


def test_it_is_stable_across_processes_with_different_hash_seeds() -> None:
    code = "from ingestion.simhash import simhash; print(simhash('Senior engineer, routing team'))"
    values = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        values.add(int(out.stdout))

    assert values == {simhash("Senior engineer, routing team")}


def test_a_text_without_words_hashes_to_zero() -> None:
    assert simhash("") == 0
    assert simhash(" ... — \n\n") == 0
    assert simhash_many([]) == []


def test_case_punctuation_and_spacing_do_not_matter() -> None:
    assert simhash("Senior Engineer — Routing, Team!") == simhash("senior engineer routing team")


def test_tokens_are_letters_and_digits_of_any_script() -> None:
    own, shared = tokenize("Don’t résumé: 東京 co-op x_y 401(k)")

    assert own == ["don", "t", "résumé", "東京", "co", "op", "x", "y", "401", "k"]
    assert shared == []


def test_values_are_signed_64_bit() -> None:
    values = simhash_many(random_texts(200))

    assert all(-(2**63) <= v < 2**63 for v in values)
    assert any(v < 0 for v in values)


def test_signed_and_unsigned_round_trip() -> None:
    for unsigned in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        assert to_unsigned(to_signed(unsigned)) == unsigned
    assert to_signed(2**64 - 1) == -1
    assert to_unsigned(-1) == 2**64 - 1


def test_bands_are_the_four_16_bit_quarters_lowest_first() -> None:
    assert bands(0x1234_5678_9ABC_DEF0) == (0xDEF0, 0x9ABC, 0x5678, 0x1234)
    assert bands(-1) == (0xFFFF,) * 4
    assert bands(to_signed(0x8000_0000_0000_0001)) == (1, 0, 0, 0x8000)


def test_hamming_works_on_signed_values() -> None:
    assert hamming(-1, 0) == 64
    assert hamming(to_signed(2**63), 0) == 1
    assert hamming(5, 5) == 0


def test_similar_texts_are_close_and_different_texts_far() -> None:
    rng = random.Random(11)
    base = [rng.choice(WORDS) for _ in range(400)]
    edited = list(base)
    edited[200] = "zebra"
    other = [rng.choice(WORDS) for _ in range(400)]
    a, b, c = simhash_many([" ".join(base), " ".join(edited), " ".join(other)])

    assert hamming(a, b) <= 3
    assert hamming(a, c) > 10


def test_paragraph_fingerprints_ignore_case_punctuation_and_short_lines() -> None:
    text = "About Us\nWe build the data platform.\n\nWE BUILD the data-platform!\nok"
    fingerprints = paragraph_fingerprints(text)

    assert len(fingerprints) == 2  # "About Us" and "ok" are too short
    assert fingerprints[0] == fingerprints[1]
    assert all(0 <= fp < 2**63 for fp in fingerprints)


def test_company_boilerplate_is_what_enough_postings_share() -> None:
    about = "Northwind builds the freight data platform."
    eeo = "We are an equal opportunity employer for everyone."
    texts = [f"{about}\nRole number {i} does different things every day.\n{eeo}" for i in range(6)]
    texts += ["A posting that shares nothing with the other ones at all."] * 4
    once = "Only two postings mention this sentence about parking."
    texts[0] += f"\n{once}"
    texts[1] += f"\n{once}"

    result = company_boilerplate(texts)

    assert set(result) == set(paragraph_fingerprints(f"{about}\n{eeo}")) | set(
        paragraph_fingerprints(texts[-1])
    )
    assert result == sorted(result)


def test_company_boilerplate_needs_a_minimum_count() -> None:
    texts = ["We are an equal opportunity employer for everyone."] * 2

    assert company_boilerplate(texts) == []
    assert company_boilerplate(texts, min_count=2) != []


@pytest.mark.parametrize("posting_words", [5, 50])
def test_a_posting_made_only_of_boilerplate_falls_back_to_its_full_text(
    posting_words: int,
) -> None:
    text = " ".join(["benefits"] * posting_words)
    boilerplate = frozenset(paragraph_fingerprints(text))

    assert simhash(text, boilerplate=boilerplate) == simhash(text) != 0
    assert tokenize(text, boilerplate=boilerplate)[1] == []


def test_boilerplate_weighs_less_than_the_posting_own_text() -> None:
    rng = random.Random(5)
    shared = "\n".join(" ".join(rng.choice(WORDS) for _ in range(20)) for _ in range(40))
    roles = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(3)]
    texts = [f"{role}\n{shared}" for role in roles]
    boilerplate = frozenset(company_boilerplate(texts))

    plain = simhash_many(texts)
    capped = simhash_many(texts, boilerplate=boilerplate)

    assert hamming(capped[0], capped[1]) > hamming(plain[0], plain[1])


def test_boilerplate_lines_give_the_same_simhashes_as_its_fingerprints() -> None:
    shared = (
        "Acme builds tools for teams.  We value clear writing!\nBenefits: health, dental and vision"
    )
    texts = [f"Role {n}: you will own service number {n} end to end\n{shared}" for n in range(8)]
    learned, lines = learn_boilerplate(texts)
    boilerplate = frozenset(learned)
    assert learned == company_boilerplate(texts)

    assert len(lines) == 2
    by_lines = simhash_many_sized(texts, boilerplate=boilerplate, lines=lines)
    assert by_lines == simhash_many_sized(texts, boilerplate=boilerplate)
    assert [value for value, _ in by_lines] == [
        simhash_reference(text, boilerplate=boilerplate) for text in texts
    ]


def test_common_punctuation_is_no_letter_or_digit() -> None:
    # Made a space before tokens are read: only right for what separates tokens anyway.
    assert not any(char.isalnum() or char == "_" for char in simhash_text._COMMON_PUNCTUATION)


def _tricky_texts(count: int, seed: int) -> tuple[list[str], list[str]]:
    """Texts made of boilerplate paragraphs (given back too) and others, spaced and punctuated
    every which way: lines that are a paragraph but for their spacing, that hold its words
    with other boundaries ("ab c" for "a bc"), repeat it, or are nothing else."""
    rng = random.Random(seed)
    paragraphs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(4)]
    paragraphs.append("ab cd ef gh")
    gaps = [" ", "  ", " . ", ", ", "\t", " — ", "…", " €", "\xa0"]
    texts = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(0, 8)):
            kind = rng.random()
            if kind < 0.4:
                words = rng.choice(paragraphs).split()
            elif kind < 0.5:
                words = ["abc", "d", "efg", "h"]  # "ab cd ef gh" without its spaces
            else:
                words = [rng.choice(WORDS) for _ in range(rng.randint(0, 10))]
            if rng.random() < 0.3:
                words = [w.upper() for w in words]
            line = "".join(w + rng.choice(gaps) for w in words)
            lines.append(rng.choice(["", " ", "  "]) + line)
        texts.append(rng.choice(["\n", "\n\n"]).join(lines))
    return texts, paragraphs


@pytest.mark.parametrize("seed", range(5))
def test_boilerplate_lines_split_texts_as_their_fingerprints_do(seed: int) -> None:
    texts, paragraphs = _tricky_texts(60, seed)
    lines = frozenset(b" ".join(p.lower().encode().split()) for p in paragraphs)
    boilerplate = frozenset(simhash_text._line_fingerprint(line) for line in lines)

    for text in texts:
        by_lines = simhash_text._split(text, boilerplate, lines)
        by_fingerprints = simhash_text._split(text, boilerplate)
        assert [part.split() for part in by_lines] == [part.split() for part in by_fingerprints]
    sized = simhash_many_sized(texts, boilerplate=boilerplate, lines=lines)
    assert sized == simhash_many_sized(texts, boilerplate=boilerplate)
    assert [value for value, _ in sized] == [
        simhash_reference(text, boilerplate=boilerplate) for text in texts
    ]
