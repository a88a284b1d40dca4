"""A real headless Chromium for the web tests: Debian's ``chromium`` driven by Playwright.

No browser is downloaded: Playwright launches the system binary (``.ci/run`` installs
Debian's ``chromium``). A missing browser fails the test with the command that installs
it; browser tests never skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Browser, async_playwright


def chromium_path() -> str:
    """Where the system Chromium is (``CHROMIUM`` overrides), or fail the test."""
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if path is None:
        pytest.fail("no Chromium: apt-get install -y chromium (the browser tests use Debian's)")
    return path


@asynccontextmanager
async def chromium(args: Sequence[str] = ()) -> AsyncIterator[Browser]:
    """A headless Chromium with ``args`` added to its command line (e.g. the fake microphone:
    ``--use-fake-device-for-media-stream``, ``--use-fake-ui-for-media-stream``,
    ``--use-file-for-fake-audio-capture=PATH.wav``)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox", *args]
        )
        try:
            yield browser
        finally:
            await browser.close()
