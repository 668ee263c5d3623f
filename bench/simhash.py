"""Simhash micro-benchmark: the plain-Python reference against the vectorized `simhash_many`,
on ~2,000 varied ~2 KB postings, measured in the same process. Prints µs per posting and the
ratio; asserts nothing (machines are noisy).

    .venv/bin/python bench/simhash.py [--postings 2000] [--batch 250]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingestion.simhash import (  # noqa: E402
    company_boilerplate,
    simhash_many,
    simhash_reference,
)

_WORDS = (
    "we are looking for a senior backend engineer product designer account executive data "
    "analyst to join our team you will build design own ship maintain services platform "
    "customers users python go sql postgresql kubernetes aws figma research pipeline quota "
    "revenue dashboards experiments routing freight logistics pricing growth mentor review "
    "collaborate cross functional roadmap strategy remote hybrid office benefits salary equity "
    "health dental vision retirement parental leave learning budget flexible hours years "
    "experience strong communication skills ownership impact scale reliability performance "
    "café résumé naïve über don’t — • “quoted”"
)
VOCABULARY = _WORDS.split()
ABOUT = (
    "Northwind Analytics builds the data platform that logistics teams use to plan, move and "
    "track freight. We are a team of 340 people working from Chicago, Lisbon and Toronto."
)
EEO = (
    "Northwind Analytics is an equal opportunity employer. We welcome applicants of every "
    "background and make hiring decisions based on merit, qualifications and business needs."
)


def make_postings(count: int, seed: int = 1) -> list[str]:
    """~2 KB postings: a few companies' shared paragraphs around varied role paragraphs."""
    rng = random.Random(seed)
    postings = []
    for i in range(count):
        paragraphs = [ABOUT] if i % 3 else []
        size = 0
        while size < 1700:
            words = [rng.choice(VOCABULARY) for _ in range(rng.randint(8, 40))]
            paragraph = " ".join(words).capitalize() + "."
            paragraphs.append(paragraph)
            size += len(paragraph)
        if i % 2:
            paragraphs.append(EEO)
        postings.append("\n\n".join(paragraphs))
    return postings


def per_posting_us(run, texts: list[str], repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run(texts)
        best = min(best, time.perf_counter() - started)
    return best / len(texts) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    texts = make_postings(args.postings)
    boilerplate = frozenset(company_boilerplate(texts))
    size = sum(len(t.encode()) for t in texts) / len(texts)
    print(f"{len(texts)} postings, {size:.0f} bytes each on average, batches of {args.batch}")

    def reference(batch: list[str], bp: frozenset[int] = frozenset()) -> list[int]:
        return [simhash_reference(t, boilerplate=bp) for t in batch]

    def vectorized(batch: list[str], bp: frozenset[int] = frozenset()) -> list[int]:
        out: list[int] = []
        for start in range(0, len(batch), args.batch):
            out.extend(simhash_many(batch[start : start + args.batch], boilerplate=bp))
        return out

    sample = texts[: max(200, len(texts) // 10)]  # the reference is slow: a tenth will do
    for label, bp in (("no boilerplate", frozenset()), ("company boilerplate", boilerplate)):
        assert vectorized(sample, bp) == reference(sample, bp)  # same values, or no point
        ref_us = per_posting_us(lambda b, bp=bp: reference(b, bp), sample, 1)
        vec_us = per_posting_us(lambda b, bp=bp: vectorized(b, bp), texts, args.repeat)
        print(
            f"{label:20}  reference {ref_us:8.1f} µs/posting   simhash_many {vec_us:6.1f} "
            f"µs/posting   ratio {ref_us / vec_us:5.1f}×"
        )


if __name__ == "__main__":
    main()
