"""A real browser for the pages the API serves: Debian's `chromium`, driven by Playwright
(pointed at the system browser: Playwright's own download is not reachable here).

`page_of(base)` gives a page on which every request to another origin is refused and
recorded, so a test can assert that a page needs nothing but our own origin;
`sign_in` signs a page into the console.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect, sync_playwright


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("no chromium on PATH: ./scripts/deps --install installs Debian's")


@dataclass
class Browsed:
    page: Page
    foreign: list[str] = field(default_factory=list)  # requests to other origins, refused


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@contextmanager
def page_of(base: str) -> Iterator[Browsed]:
    origin = _origin(base)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            browsed = Browsed(context.new_page())

            def gate(route: Route) -> None:
                url = route.request.url
                if _origin(url) == origin or url.startswith(("data:", "blob:")):
                    route.continue_()
                else:
                    browsed.foreign.append(url)
                    route.abort()

            context.route("**/*", gate)
            yield browsed
        finally:
            browser.close()


def sign_in(page: Page, base: str, key: str) -> None:
    """Open the console, be sent to its sign-in page, sign in with KEY, see the overview."""
    page.goto(f"{base}/console")
    expect(page).to_have_url(f"{base}/console/sign-in")
    page.get_by_label("Admin API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
