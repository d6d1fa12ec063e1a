"""Headless Chromium for browser tests, driven by Selenium with explicit paths (nothing is downloaded).

    driver = chrome(tmp_path)      # skips the test, with the reason printed, when Chromium or its driver is missing
    driver.get(url)

Debian: ``apt-get install -y chromium chromium-driver`` (``.ci/run`` does it when missing). The browser binary is
used directly (``/usr/bin/chromium`` is a wrapper script that prints a warning); ``SE_OFFLINE`` keeps Selenium
Manager from looking anything up on the internet.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("FACEANIM_CHROMIUM", "/usr/lib/chromium/chromium")
CHROMEDRIVER = os.environ.get("FACEANIM_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = "apt-get install -y chromium chromium-driver"


def _skip(reason: str):
    print(f"browser test skipped: {reason}")
    pytest.skip(reason)


def chrome(tmp_path: Path, width: int = 1400, height: int = 1000):
    """A headless ``selenium.webdriver.Chrome`` (quit it when done), or ``pytest.skip`` with the reason printed."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not try to download a browser or driver
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip('selenium is not installed (pip install -e ".[dev]")')
    for path, what in ((CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            _skip(f"{what} not found at {path} ({INSTALL_HINT})")
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)  # the driver's log and the profile go here
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--no-first-run", "--disable-extensions", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads")})
    log = tmp_path / "chromedriver.log"
    try:
        return webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(log)), options=options)
    except WebDriverException as exc:  # installed but broken: a failure, not a skip
        first = (str(exc).strip().splitlines() or ["?"])[0]
        raise RuntimeError(f"Chromium is installed but did not start ({first}); see {log}") from None
