"""Near-duplicates on realistic postings: one company's roles share ~600 words of about-us,
benefits and EEO text and differ in a ~150-word role section."""

from __future__ import annotations

import contextlib
import random
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from ingestion import dedupe, store
from ingestion.dedupe import find_near_duplicates, store_fingerprints
from ingestion.models import Job, JobFingerprint, JobStatus
from ingestion.normalize import html_to_text
from ingestion.simhash import bands, company_boilerplate, hamming, simhash_many, to_signed
from ingestion.store import bulk as sql
from ingestion.store import drop_fingerprints
from ingestion.store.postgresql import NEAR_COMPANY_FINGERPRINTS_SQL as _NEAR_COMPANY_SQL
from ingestion.store.postgresql import NEAR_FINGERPRINTS_SQL as _NEAR_SQL

ABOUT = """
<h2>About Northwind Analytics</h2>
<p>Northwind Analytics builds the data platform that logistics teams use to plan, move and
track freight across four continents. Founded in 2016 by a group of operations researchers and
software engineers, we now serve more than nine hundred shippers, carriers and brokers, from
family-owned trucking firms to some of the largest retailers in the world. Our customers rely
on us to forecast demand, price lanes, schedule docks and explain, in plain language, why a
shipment is late and what to do about it.</p>
<p>We are a team of about three hundred and forty people working from Chicago, Lisbon,
Toronto and home offices in eleven countries. We believe that the best products come from
small teams with clear ownership, honest feedback and the time to do careful work. We write
things down, we review each other's work with kindness, and we measure ourselves by the
outcomes our customers see rather than by the hours we spend at a desk.</p>
<p>In 2023 we raised our Series C led by long-term investors who share our view that the
supply chain deserves software as good as the software that runs trading desks. We are
profitable in three of our five regions and we are growing deliberately, hiring people who
want to stay for years and grow with the company.</p>
"""
BENEFITS = """
<h2>What we offer</h2>
<ul>
<li>Competitive salary and meaningful equity in a growing company, reviewed every year against
market data that we share openly with every employee.</li>
<li>Medical, dental and vision insurance for you and your dependents, with the premiums fully
covered by Northwind for employees and ninety percent covered for families.</li>
<li>A retirement plan with a matching contribution of up to five percent of your salary,
vested from your first day with us.</li>
<li>Twenty-five days of paid vacation, plus local public holidays and a company-wide winter
break between the end of December and the first working day of January.</li>
<li>Sixteen weeks of fully paid parental leave for every new parent, including adoptive and
foster parents, and a gradual return-to-work schedule when you come back.</li>
<li>A yearly learning budget of two thousand dollars for books, courses and conferences, and
time during the working week to use it.</li>
<li>A home office stipend to buy the desk, chair and equipment you need, and a monthly
allowance for internet and co-working space.</li>
<li>Flexible working hours built around a few hours of overlap with your team, and no
meetings on Wednesdays so that everyone gets a full day of focused work.</li>
<li>Mental health support through a confidential counselling service available to you and
your family at any hour, in twelve languages.</li>
</ul>
<h2>How we hire</h2>
<p>Our process has four steps: a thirty-minute conversation with a recruiter, a conversation
with the hiring manager about your experience, a practical exercise that resembles the work
you would do here and that we pay you for, and a final conversation with two future
colleagues. We aim to give you an answer within three weeks of your first conversation, and
we give feedback to every candidate who reaches the practical exercise.</p>
"""
EEO = """
<h2>Equal opportunity</h2>
<p>Northwind Analytics is an equal opportunity employer. We welcome applicants of every race,
colour, religion, sex, sexual orientation, gender identity or expression, national origin,
age, disability, genetic information, veteran status and any other characteristic protected
by law. We are committed to building a team that reflects the diversity of the communities
we serve, and we make hiring decisions based on merit, qualifications and business needs.</p>
<p>If you need an accommodation at any stage of our hiring process, because of a disability
or for any other reason, please tell your recruiter or write to our people team and we will
work with you to find a solution. Requests are handled confidentially and do not affect how
your application is assessed.</p>
<p>We participate in E-Verify in the United States. Candidates in the European Union can
read how we process their personal data in our candidate privacy notice, and may ask us at
any time to delete the information they have shared with us during the hiring process.</p>
"""

ROLES = {
    "backend": """
<h2>Senior Backend Engineer, Routing</h2>
<p>You will join the routing team, which owns the services that turn thousands of orders into
feasible truck routes every few minutes. The team is five engineers and a product manager,
and you will report to the engineering manager for planning.</p>
<ul>
<li>Design and build Python and Go services that solve vehicle routing problems with time
windows at scale, and keep their latency predictable under peak load.</li>
<li>Own the PostgreSQL schemas, queues and caches behind the planner, and make them easy to
operate for the on-call engineer at three in the morning.</li>
<li>Work with our operations researchers to move new heuristics from notebooks into
production safely, with benchmarks and gradual rollouts.</li>
<li>You have six or more years of backend experience, have run distributed systems in
production, and write clear design documents.</li>
</ul>
""",
    "designer": """
<h2>Product Designer, Carrier Experience</h2>
<p>You will design the tools that carriers and drivers use to accept loads, share their
location and get paid. Many of our users work from a phone in a truck cab, often with a poor
connection and very little time, and your work will make their day easier.</p>
<ul>
<li>Lead the design of new workflows from research to shipped interface, working closely
with two engineering squads and a product manager.</li>
<li>Run interviews and ride-alongs with drivers and dispatchers, and turn what you learn into
prototypes that we can test within a week.</li>
<li>Care for our design system, its accessibility and its documentation, so that every team
can build consistent screens without waiting for you.</li>
<li>You have a portfolio showing four or more years of product design for complex tools, and
you are comfortable presenting your reasoning to executives and customers.</li>
</ul>
""",
    "sales": """
<h2>Account Executive, Mid-Market Shippers</h2>
<p>You will own the full sales cycle with mid-market shippers in North America, from first
meeting to signed contract, and hand over happy customers to our success team. You will
report to the vice president of sales and work alongside four other account executives.</p>
<ul>
<li>Build and manage a pipeline of manufacturers and distributors moving between five hundred
and five thousand loads a month, and forecast it accurately every week.</li>
<li>Run discovery and tailored demonstrations with logistics directors, finance leaders and
IT teams, and write proposals that tie our platform to their costs.</li>
<li>Negotiate pricing and contract terms with the support of our deal desk and legal team.</li>
<li>You have three or more years of closing new business in B2B software, ideally selling to
supply chain or operations buyers, and a record of exceeding your quota.</li>
</ul>
""",
    "analyst": """
<h2>Data Analyst, Pricing</h2>
<p>You will help our pricing team understand how freight rates move across lanes, seasons
and customers, and turn that understanding into the models and dashboards that our account
managers use when they quote. You will report to the head of pricing analytics.</p>
<ul>
<li>Write SQL and Python to clean, join and explore millions of historical shipments and
carrier quotes, and explain what you find in clear written notes.</li>
<li>Build and maintain dashboards that show margin, win rate and rate trends by lane, and
make sure the numbers agree with finance.</li>
<li>Design experiments with the product team to test new pricing rules, and measure their
effect honestly, including when the answer is disappointing.</li>
<li>You have two or more years of analytics experience, strong statistics, and the patience
to find out why two reports disagree.</li>
</ul>
""",
}


def posting_html(role: str) -> str:
    return ABOUT + ROLES[role] + BENEFITS + EEO


def posting_text(role: str) -> str:
    return html_to_text(posting_html(role))


def reposted_text(role: str) -> str:
    """The same role re-posted with one word changed."""
    html = posting_html(role)
    edited = html.replace("<p>You will", "<p>You would", 1)
    assert edited != html
    return html_to_text(edited)


def word_count(html: str) -> int:
    return len(html_to_text(html).split())


@pytest.fixture
def boilerplate() -> frozenset[int]:
    return frozenset(company_boilerplate([posting_text(role) for role in ROLES]))


def make_job(owner, external_id: str, simhash: int, *, status=JobStatus.READY, **fields) -> Job:  # type: ignore[no-untyped-def]
    """A job with this simhash and, whatever its status, a fingerprint: as a ready job's is,
    or as one left behind by a job that has since moved on (the lookup must ignore it)."""
    now = timezone.now()
    defaults = {
        "first_seen_at": now,
        "last_seen_at": now,
        "title": f"Job {external_id}",
        "company": "Northwind Analytics",
    }
    defaults.update(fields)
    job = Job.objects.create(
        owner=owner, external_id=external_id, status=status, simhash=simhash, **defaults
    )
    store_fingerprints(owner.pk, [(job.pk, simhash, job.company)])
    return job


def test_the_postings_are_realistic_in_size() -> None:
    shared = word_count(ABOUT + BENEFITS + EEO)
    assert 550 <= shared <= 700
    for role in ROLES.values():
        assert 120 <= word_count(role) <= 190


def test_boilerplate_is_the_paragraphs_every_role_shares(boilerplate: frozenset[int]) -> None:
    from ingestion.simhash import paragraph_fingerprints

    shared = set(paragraph_fingerprints(html_to_text(ABOUT + BENEFITS + EEO)))
    role = set(paragraph_fingerprints(html_to_text(ROLES["backend"])))
    assert shared <= boilerplate
    assert not role & boilerplate


def test_different_roles_are_far_apart_with_the_boilerplate_capped(
    boilerplate: frozenset[int],
) -> None:
    hashes = simhash_many([posting_text(role) for role in ROLES], boilerplate=boilerplate)
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    # Measured: 9..18 bits (24..34 with the boilerplate left out entirely).
    assert min(distances) > 6


def test_different_roles_are_apart_even_with_the_boilerplate_in() -> None:
    hashes = simhash_many([posting_text(role) for role in ROLES])
    distances = [hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    # Measured: 5..11 bits — more than 3, but only because the boilerplate is 5× the role
    # here; capping it (above) is what keeps a longer one from pulling roles together.
    assert min(distances) > 3


def test_a_repost_with_one_word_changed_is_near(boilerplate: frozenset[int]) -> None:
    # Measured: 1..3 bits. Over random one-word edits of these postings 90% stay within 3.
    for role in ROLES:
        original, repost = simhash_many(
            [posting_text(role), reposted_text(role)], boilerplate=boilerplate
        )
        assert hamming(original, repost) <= 3, role


def test_a_repost_is_a_duplicate_of_the_earlier_job(user, boilerplate) -> None:  # type: ignore[no-untyped-def]
    original_hash, repost_hash = simhash_many(
        [posting_text("backend"), reposted_text("backend")], boilerplate=boilerplate
    )
    earlier = make_job(user, "gh-100", original_hash)
    repost = make_job(user, "gh-200", repost_hash, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(repost.pk, repost_hash)]) == {
        repost.pk: earlier.pk
    }


def test_other_roles_of_the_company_are_not_duplicates(user, boilerplate) -> None:  # type: ignore[no-untyped-def]
    hashes = simhash_many([posting_text(role) for role in ROLES], boilerplate=boilerplate)
    make_job(user, "backend", hashes[0])
    candidates = [
        (make_job(user, role, value, status=JobStatus.PENDING).pk, value)
        for role, value in zip(list(ROLES)[1:], hashes[1:], strict=True)
    ]

    assert find_near_duplicates(owner_id=user.pk, candidates=candidates) == {}


def test_the_earliest_seen_stored_job_is_canonical(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("designer")])[0]
    now = timezone.now()
    later = make_job(user, "b", value ^ 0b1, first_seen_at=now)
    earliest = make_job(user, "a", value ^ 0b10, first_seen_at=now - timedelta(days=3))
    job = make_job(user, "c", value, status=JobStatus.PENDING)

    assert later.pk < earliest.pk  # so the choice is by first_seen_at, not by id
    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, value)]) == {
        job.pk: earliest.pk
    }


def test_a_job_is_not_a_duplicate_of_an_expired_job(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("sales")])[0]
    make_job(user, "old", value, status=JobStatus.EXPIRED)
    job = make_job(user, "new", value, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, value)]) == {}


def test_a_skipped_duplicate_is_never_canonical(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("sales")])[0]
    make_job(user, "skipped", value, status=JobStatus.SKIPPED)
    job = make_job(user, "new", value, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, value)]) == {}


def test_a_fingerprint_left_behind_under_another_simhash_finds_nothing(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("sales")])[0]
    edited = make_job(user, "edited", value ^ 0xFFFF_0000)  # its text changed since
    store_fingerprints(user.pk, [(edited.pk, value, edited.company)])
    Job.objects.filter(pk=edited.pk).update(simhash=value ^ 0xFFFF_0000)
    job = make_job(user, "new", value, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, value)]) == {}


def test_fingerprints_are_replaced_and_dropped(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("sales")])[0]
    job = make_job(user, "a", value)
    store_fingerprints(user.pk, [(job.pk, value ^ 1, job.company)])

    assert JobFingerprint.objects.get(job=job).simhash == value ^ 1
    assert JobFingerprint.objects.get(job=job).band0 == bands(value ^ 1)[0]
    drop_fingerprints([job.pk])
    assert not JobFingerprint.objects.filter(job=job).exists()


def test_a_probe_reads_only_its_companys_fingerprints(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("analyst")])[0]
    ours = make_job(user, "ours", value ^ 1)
    theirs = make_job(user, "theirs", value, company="Globex")
    keys = [dedupe.company_key(" northwind analytics")]  # as compared: case and spaces aside

    found = store.near_fingerprints(user.pk, [value], 3, keys)
    assert [row[0] for row in found] == [ours.pk]
    found = store.near_fingerprints(user.pk, [value], 3, None)
    assert sorted(row[0] for row in found) == sorted([ours.pk, theirs.pk])


@pytest.mark.parametrize("across", [False, True])
def test_stored_jobs_of_other_companies_count_only_across_companies(user, across) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("analyst")])[0]
    earlier = timezone.now() - timedelta(days=1)
    theirs = make_job(user, "theirs", value, company="Globex", title="Analyst")
    Job.objects.filter(pk=theirs.pk).update(first_seen_at=earlier)
    ours = make_job(user, "ours", value ^ 1, title="Analyst")
    decider = dedupe.NearDuplicates(user.pk, across_companies=across)

    candidate = dedupe.Candidate(value, company="Northwind Analytics", title="Analyst")
    [match] = decider.decide([candidate])
    assert match is not None
    assert match.canonical.job_id == (theirs.pk if across else ours.pk)


def test_different_owners_never_dedupe(user, other_user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("analyst")])[0]
    make_job(other_user, "theirs", value)
    job = make_job(user, "mine", value, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, value)]) == {}


def test_within_a_batch_the_earlier_candidate_is_canonical(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("analyst")])[0]
    top_bit = to_signed(value ^ (1 << 63))  # the sign bit flipped
    first = make_job(user, "first", value, status=JobStatus.PENDING)
    second = make_job(user, "second", top_bit, status=JobStatus.PENDING)
    third = make_job(user, "third", value ^ 0b111, status=JobStatus.PENDING)

    result = find_near_duplicates(
        owner_id=user.pk,
        candidates=[(first.pk, value), (second.pk, top_bit), (third.pk, value ^ 0b111)],
    )

    assert result == {second.pk: first.pk, third.pk: first.pk}


def test_a_duplicate_in_the_batch_does_not_become_canonical(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("backend")])[0]
    stored = make_job(user, "stored", value)
    near = make_job(user, "near", value ^ 0b111, status=JobStatus.PENDING)
    # 6 bits from `stored`, 3 from `near`: near enough only to the duplicate.
    far = make_job(user, "far", value ^ 0b111111, status=JobStatus.PENDING)

    result = find_near_duplicates(
        owner_id=user.pk, candidates=[(near.pk, value ^ 0b111), (far.pk, value ^ 0b111111)]
    )

    assert result == {near.pk: stored.pk}


def test_a_job_is_never_its_own_duplicate(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("backend")])[0]
    job = make_job(user, "ready", value)  # a ready job being processed again

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, value)]) == {}


def test_excluded_jobs_are_not_canonical(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("backend")])[0]
    excluded = make_job(user, "excluded", value)
    job = make_job(user, "new", value, status=JobStatus.PENDING)

    assert (
        find_near_duplicates(
            owner_id=user.pk, candidates=[(job.pk, value)], exclude_ids=[excluded.pk]
        )
        == {}
    )


def test_distance_four_is_not_a_duplicate(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("backend")])[0]
    # One differing bit in each band: the lookup's worst case, beyond the pigeonhole.
    spread = value ^ (1 | 1 << 16 | 1 << 32 | 1 << 47)
    make_job(user, "stored", value)
    job = make_job(user, "new", spread, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, spread)]) == {}


def test_distance_three_is_found_through_the_one_band_left_equal(user) -> None:  # type: ignore[no-untyped-def]
    value = simhash_many([posting_text("backend")])[0]
    spread = value ^ (1 | 1 << 16 | 1 << 32)  # only band 3 still agrees
    stored = make_job(user, "stored", value)
    job = make_job(user, "new", spread, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, spread)]) == {
        job.pk: stored.pk
    }


def test_signed_simhashes_round_trip_through_the_database(user) -> None:  # type: ignore[no-untyped-def]
    negative = -(1 << 63) + 12345
    stored = make_job(user, "stored", negative)
    job = make_job(user, "new", negative ^ 1, status=JobStatus.PENDING)

    assert find_near_duplicates(owner_id=user.pk, candidates=[(job.pk, negative ^ 1)]) == {
        job.pk: stored.pk
    }


def test_the_lookup_is_two_queries_per_batch(user, django_assert_num_queries, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    hashes = simhash_many([posting_text(role) for role in ROLES])
    jobs = [
        make_job(user, role, value, status=JobStatus.PENDING)
        for role, value in zip(ROLES, hashes, strict=True)
    ]
    drop_fingerprints([job.pk for job in jobs])  # as jobs not yet processed have none
    original = make_job(user, "original", hashes[0] ^ 0b101)

    statements: list[str] = []
    bulk_cursor = sql.bulk_cursor

    class Counting:
        def __init__(self, cursor) -> None:  # type: ignore[no-untyped-def]
            self.cursor = cursor

        def execute(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
            statements.append(query)
            return self.cursor.execute(query, *args, **kwargs)

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.cursor, name)

    @contextlib.contextmanager
    def counting():  # type: ignore[no-untyped-def]
        with bulk_cursor() as cursor:
            yield Counting(cursor)

    monkeypatch.setattr(sql, "bulk_cursor", counting)
    # Two statements whatever the batch: the fingerprints within the distance (on PostgreSQL
    # the server computes it; SQLite reads those sharing a band), then their jobs if ready.
    with django_assert_num_queries(2 if connection.vendor != "postgresql" else 0):
        found = find_near_duplicates(
            owner_id=user.pk, candidates=[(j.pk, v) for j, v in zip(jobs, hashes, strict=True)]
        )
    assert len(statements) == (2 if connection.vendor == "postgresql" else 0)
    assert found == {jobs[0].pk: original.pk}


def test_a_distance_beyond_the_band_lookup_is_refused(user, settings) -> None:  # type: ignore[no-untyped-def]
    settings.INTAKE_SIMHASH_DISTANCE = 4

    with pytest.raises(ImproperlyConfigured):
        find_near_duplicates(owner_id=user.pk, candidates=[(1, 0)])


pytestmark = pytest.mark.django_db


def test_the_lookup_probes_the_band_indexes(user) -> None:  # type: ignore[no-untyped-def]
    # Each band is an indexed equality probe of the fingerprints, never a walk of the
    # owner's jobs, and only the few within the distance are looked up among the jobs.
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    rng = random.Random(7)
    now = timezone.now()
    stored = [
        Job(
            owner=user,
            company="Northwind Analytics",
            external_id=f"gh-{i}",
            title=f"Job {i}",
            status=JobStatus.READY,
            simhash=to_signed(rng.getrandbits(64)),
            first_seen_at=now,
            last_seen_at=now,
        )
        for i in range(3000)
    ]
    Job.objects.bulk_create(stored)
    store_fingerprints(user.pk, [(job.pk, job.simhash, job.company) for job in stored])
    value = stored[0].simhash
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_job")
        cursor.execute("ANALYZE ingestion_jobfingerprint")
    b0, b1, b2, b3 = bands(value)
    params = {
        "probes": [value],
        "owner": user.pk,
        "distance": 3,
        "band0": [b0],
        "band1": [b1],
        "band2": [b2],
        "band3": [b3],
    }
    with sql.bulk_cursor() as cursor:
        cursor.execute("EXPLAIN " + _NEAR_SQL, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for band in range(4):
        assert f"ingestion_fingerprint_b{band}_co" in plan, plan
    assert "Seq Scan on ingestion_job" not in plan, plan
    # Within a company, the same indexes reach that company's fingerprints alone.
    params["companies"] = [dedupe.company_key("Northwind Analytics")]
    with sql.bulk_cursor() as cursor:
        cursor.execute("EXPLAIN " + _NEAR_COMPANY_SQL, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for band in range(4):
        assert f"ingestion_fingerprint_b{band}_co" in plan, plan
    conds = re.findall(r"Index Cond: .*company_key = p(?:_\d)?\.company_key", plan)
    assert len(conds) == 4, plan
    pending = make_job(user, "new", value, status=JobStatus.PENDING)
    assert find_near_duplicates(owner_id=user.pk, candidates=[(pending.pk, value)]) == {
        pending.pk: stored[0].pk
    }


@pytest.mark.parametrize("analyzed_as", [JobStatus.PENDING, JobStatus.READY])
def test_lookups_by_id_probe_the_primary_key_whatever_the_statistics(user, analyzed_as) -> None:  # type: ignore[no-untyped-def]
    # Statistics taken while every job was pending (the run's ANALYZE) or ready (a later
    # one) must not turn a lookup of 2,000 ids into a walk of the jobs with that status.
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    from ingestion.store.postgresql import PENDING_JOBS_SQL as _PENDING_SQL
    from ingestion.store.postgresql import STILL_READY_SQL as _STILL_READY_SQL

    now = timezone.now()
    Job.objects.bulk_create(
        Job(
            owner=user,
            company="Northwind Analytics",
            external_id=f"gh-{i}",
            title=f"Job {i}",
            status=analyzed_as,
            first_seen_at=now,
            last_seen_at=now,
        )
        for i in range(5000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_job")
    other = JobStatus.READY if analyzed_as == JobStatus.PENDING else JobStatus.PENDING
    Job.objects.update(status=other)
    ids = list(Job.objects.values_list("id", flat=True)[:2000])
    for query, params in ((_STILL_READY_SQL, [ids]), (_PENDING_SQL, [1, ids])):
        with sql.bulk_cursor() as cursor:
            cursor.execute("EXPLAIN " + query, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "ingestion_job_pkey" in plan, plan


@pytest.mark.parametrize("analyzed", [False, True])
def test_a_batch_reaches_its_run_items_by_index_not_by_walking_the_run(user, analyzed) -> None:  # type: ignore[no-untyped-def]
    # Each pending job brings its items' ids, found on the (run, job) index, and the statuses
    # go back by primary key: never a read of every item of the run per batch (a cost that
    # grows with the run), whatever the statistics say.
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    from ingestion.models import RunItem
    from ingestion.store.postgresql import PENDING_JOBS_SQL as _PENDING_SQL
    from ingestion.store.postgresql import WRITE_ITEM_STATUS_SQL as _ITEM_UPDATE_SET_SQL
    from ingestion.store.postgresql import pending_jobs as _pending_rows
    from runs.models import IngestionRun

    now = timezone.now()
    run = IngestionRun.objects.create(owner=user, kind="ingest", status="ingesting")
    jobs = Job.objects.bulk_create(
        Job(
            owner=user,
            company="Northwind Analytics",
            external_id=f"gh-{i}",
            title=f"Job {i}",
            first_seen_at=now,
            last_seen_at=now,
        )
        for i in range(3000)
    )
    RunItem.objects.bulk_create(
        RunItem(run=run, job=job, external_id=job.external_id, outcome="new") for job in jobs
    )
    # The items of earlier runs: the table is larger than one run.
    earlier = IngestionRun.objects.create(owner=user, kind="preview", status="finished")
    RunItem.objects.bulk_create(
        RunItem(run=earlier, external_id=f"old-{i}", outcome="new") for i in range(30000)
    )
    if analyzed:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE ingestion_runitem")
            cursor.execute("ANALYZE ingestion_job")
    ids = [job.pk for job in jobs[1000:3000]]
    items = dict(RunItem.objects.filter(job_id__in=ids).values_list("job_id", "id"))

    with sql.bulk_cursor() as cursor:
        cursor.execute("EXPLAIN " + _PENDING_SQL, [run.pk, ids])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "ingestion_runitem_job_run" in plan, plan
    assert "Index Cond: ((job_id = j.id) AND (run_id = " in plan, plan
    rows = _pending_rows(run.pk, ids)
    assert [(row[0], row[-1]) for row in rows] == [(pk, [items[pk]]) for pk in ids]

    item_ids = sorted(items.values())
    query, params = sql.unnest_statement(
        _ITEM_UPDATE_SET_SQL,
        ("text", "text", "timestamptz", "bigint"),
        [("ready", "", now, pk) for pk in item_ids],
        [item_ids],
    )
    with sql.bulk_cursor() as cursor:
        cursor.execute("EXPLAIN " + query, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "ingestion_runitem_pkey" in plan, plan
    assert "Seq Scan on ingestion_runitem" not in plan, plan


def test_the_index_skips_an_earlier_close_entry_that_is_not_alike(settings) -> None:  # type: ignore[no-untyped-def]
    settings.INTAKE_DEDUPE_ACROSS_COMPANIES = False
    index = dedupe._BandIndex()
    other_role = dedupe.Candidate(0b111, company="Acme", title="Office manager", label="a")
    same_role = dedupe.Candidate(0b1, company="Acme", title="Backend engineer", label="b")
    far = dedupe.Candidate(0xFFFF << 16, company="Acme", title="Backend engineer", label="c")
    index.add((1.0, 0), other_role)
    index.add((2.0, 0), same_role)
    index.add((0.0, 0), far)  # earliest, shares bands 0, 2 and 3, but 16 bits apart
    match = index.earliest_match(
        dedupe.Candidate(0, company="Acme", title="Backend engineer"), dedupe._Rules()
    )
    assert match is not None
    assert (match.canonical.label, match.distance) == ("b", 1)
