"""Headless Chromium for browser tests: Debian's `/usr/bin/chromium` (apt package `chromium`) driven by
Playwright's Python package. Nothing is downloaded: `playwright install` cannot fetch a browser here,
so Playwright is pointed at the system browser with `executable_path` (its launch option,
https://playwright.dev/python/docs/api/class-browsertype#browser-type-launch).

Use it as a pytest plugin from a test module, `pytest_plugins = ["browser"]`, which gives:

    browser   (module)    one Chromium per test module (Playwright's sync API runs its own event
                          loop, so it is not kept past the module); fails, never skips, without Chromium
    page      (function)  a page in a fresh browser context (own cookies and storage), 1280x900 CSS px;
                          when the test fails, a full-page screenshot is saved to
                          `<the test's tmp_path>/failure-<phase>.png` and named in the failure report

and the helpers `require_chromium`, `launch_chromium`, `save_screenshot`, `background_share`, `assert_not_blank`.

PYTEST_DONT_REWRITE: test modules import this module before pytest registers it as their plugin,
and pytest warns about a plugin it can no longer rewrite; its asserts carry their own messages.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Error, Page, Playwright, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# How this workplace's machines run Chromium as root with no network but the loopback: without the
# background-networking flags Chromium keeps trying (and failing) to reach Google's hosts. Playwright
# adds `--headless` itself for headless=True (and `--no-sandbox` when chromium_sandbox is False,
# its default); they are listed anyway so the whole command line is visible here.
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}  # CSS px; device scale factor 1, so screenshot px = CSS px
ACTION_TIMEOUT_MS = 30_000  # clicks, fills, waits for an element
NAVIGATION_TIMEOUT_MS = 60_000  # page loads (Label Studio's dev server is slow on 2 busy cores)

_PAGE = pytest.StashKey[Page]()
_SHOT_DIR = pytest.StashKey[Path]()


def require_chromium(executable: str | Path = CHROMIUM) -> Path:
    """`executable` as a Path; fails the test (pytest.fail, not a skip: a missing browser must not
    pass unnoticed) when it is missing, saying how to install it."""
    executable = Path(executable)
    if not executable.exists():
        found = shutil.which("chromium")
        pytest.fail(f"{executable} not found{f' (a chromium is at {found})' if found else ''}: the browser tests "
                    "drive Debian's Chromium; install it with `apt-get install chromium`", pytrace=False)
    return executable


def launch_chromium(playwright: Playwright, executable: str | Path = CHROMIUM) -> Browser:
    """Start headless Chromium from `executable` (see require_chromium) with CHROMIUM_ARGS."""
    return playwright.chromium.launch(executable_path=str(require_chromium(executable)), headless=True,
                                      args=list(CHROMIUM_ARGS))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    new_page = context.new_page()
    request.node.stash[_PAGE] = new_page
    request.node.stash[_SHOT_DIR] = tmp_path
    try:
        yield new_page
    finally:
        del request.node.stash[_PAGE]
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                               call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed test (or fixture setup) that has a page open: screenshot it, name the file in the report."""
    report = yield
    page = item.stash.get(_PAGE, None)
    if report.failed and page is not None and not page.is_closed():
        path = item.stash[_SHOT_DIR] / f"failure-{report.when}.png"
        try:
            page.screenshot(path=path, full_page=True)
            note = f"screenshot of {page.url} when it failed: {path}"
        except Error as exc:
            note = f"no screenshot of {page.url}: {exc}"
        report.sections.append(("browser", note))
    return report


def save_screenshot(page: Page, path: Path, *, full_page: bool = False) -> Image.Image:
    """Screenshot the page to `path` (PNG) and return it as an RGB image (1 px = 1 CSS px)."""
    page.screenshot(path=path, full_page=full_page)
    with Image.open(path) as image:
        return image.convert("RGB")


def background_share(image: Image.Image) -> float:
    """Share (0..1) of the pixels that have the image's most common colour: 1.0 for a blank page."""
    rgb = image.convert("RGB")
    colours = rgb.getcolors(maxcolors=rgb.width * rgb.height) or []
    return max(count for count, _ in colours) / (rgb.width * rgb.height)


def assert_not_blank(image: Image.Image, *, min_content: float = 0.02, what: str = "the page") -> None:
    """AssertionError unless at least `min_content` (share of pixels) differs from the background colour.

    Measured here: the batch page with one batch 0.12, Label Studio's labeling page 0.45, its login
    page 0.62; a page that did not render is one colour (0.0).
    """
    content = 1.0 - background_share(image)
    assert content >= min_content, (f"{what} looks blank: only {content:.1%} of its pixels differ from the "
                                    f"background colour (want >= {min_content:.0%})")
