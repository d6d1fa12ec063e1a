"""Headless Chromium for the browser tests: ``chrome(tmp_path) -> selenium.webdriver.Chrome``.

Uses Debian's chromium (/usr/lib/chromium/chromium) and chromedriver (/usr/bin/chromedriver); skips the test with the
reason when selenium or either binary is missing (``apt-get install chromium chromium-driver``). Nothing is
downloaded (Selenium Manager is never asked: the driver path is given).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/lib/chromium/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chrome(tmp_path: Path):
    """A headless Chromium driver with its profile under ``tmp_path``; the caller quits it."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    binary = CHROMIUM if os.path.isfile(CHROMIUM) else shutil.which("chromium")
    driver_path = CHROMEDRIVER if os.path.isfile(CHROMEDRIVER) else shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("chromium / chromedriver not found (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,1000", "--autoplay-policy=no-user-gesture-required",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
