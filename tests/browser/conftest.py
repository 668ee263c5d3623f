"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright's sync API against
the real ASGI server and RQ worker the top-level conftest starts."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ALICE_PASSWORD = "alice-pass-123"
# Playwright's expectations wait 5 s by default; on a 2-core machine running the web server,
# workers and Chromium beside other test processes, an htmx round trip that includes parsing
# an upload took longer than that. An expectation that holds still passes as soon as it holds.
expect.set_options(timeout=15_000)
BOB_PASSWORD = "bob-pass-123"

# Playwright's sync API leaves its asyncio loop marked as running in this thread while it is
# open, so Django's async-safety check would refuse every ORM call the tests (and the
# transactional flush) make. The check is relaxed in this process only, and only while the
# browser is up; the web server and workers get the variable cleared so the code under test is
# still checked. The same running loop would break asyncio.run()/async_to_sync in the other
# packages' tests, hence "package" scope: the browser closes when the browser tests are done.
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
CHILD_ENV = {ASYNC_UNSAFE: ""}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def child_env_overrides() -> dict[str, str]:
    return dict(CHILD_ENV)


def _set_server_password(user, password: str):  # type: ignore[no-untyped-def]
    # The suite hashes with MD5 for speed, but the web server is another process with the
    # production hashers, which cannot read an MD5 hash: the login form needs a PBKDF2 one.
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt())
    user.save(update_fields=["password"])
    return user


@pytest.fixture
def user(user):  # type: ignore[no-untyped-def]
    return _set_server_password(user, ALICE_PASSWORD)


@pytest.fixture
def other_user(other_user):  # type: ignore[no-untyped-def]
    return _set_server_password(other_user, BOB_PASSWORD)


@pytest.fixture
def new_context(browser: Browser, asgi: str) -> Iterator[Callable[[], BrowserContext]]:
    """Opens fresh browser contexts (separate cookie jars) on the test's server."""
    contexts: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context(base_url=asgi, viewport={"width": 1100, "height": 900})
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context: Callable[[], BrowserContext]) -> BrowserContext:
    return new_context()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Whatever the Content-Security-Policy refused (an inline script or style, an eval):
    # Chromium says so on the console.
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    assert not errors, f"uncaught JavaScript errors: {errors}"
    assert not refused, f"refused by the Content-Security-Policy: {refused}"


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], None]:
    """Saves a screenshot named after the test and the step."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^\w.-]+", "_", request.node.name)

    def take(page: Page, step: str) -> None:
        page.screenshot(path=SCREENSHOTS / f"{test_name}-{step}.png", full_page=True)

    return take


# axe-core, vendored for the tests only (tests/browser/vendor/README.md says how to update it).
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
AXE_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="package")
def axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def axe(axe_source: str) -> Callable[[Page], list[str]]:
    """Runs axe-core on the page as it is now and returns its serious and critical violations,
    one line each (rule, impact, the first offending elements). The script is evaluated
    through the DevTools protocol, which the page's Content-Security-Policy does not govern,
    so the app's policy stays as strict as it is in production."""

    def check(page: Page) -> list[str]:
        if not page.evaluate("typeof window.axe === 'object'"):
            page.evaluate(axe_source)
        result = page.evaluate(
            """async (impacts) => {
                const found = await window.axe.run(document, {resultTypes: ['violations']});
                return found.violations
                    .filter((v) => impacts.includes(v.impact))
                    .map((v) => `${v.id} (${v.impact}): ${v.help} — ` +
                        v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '));
            }""",
            list(AXE_IMPACTS),
        )
        return list(result)

    return check
