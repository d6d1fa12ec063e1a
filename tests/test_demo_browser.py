"""The demo in a real browser: headless Chromium loads the page, a seed and a prompt are typed, Animate is
clicked, and the <video> plays the animation (its duration is frames / fps). Saves a screenshot."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest

from browser import chrome
from demo_helpers import served_demo

pytest.importorskip("gradio")

WAIT = 90  # seconds for the video to be ready (a tiny bundle takes about one)


def _wait(driver, script: str, timeout: float = WAIT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for: {script}")


def _type(driver, selector: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, selector)
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)


def test_page_animates_a_prompt_into_a_playing_video(tmp_path):
    driver = chrome(tmp_path)
    try:
        with served_demo(tmp_path / "demo") as (engine, _, url):
            frames, fps = engine.defaults()["frames"], engine.defaults()["fps"]
            driver.get(url)
            _wait(driver, "return document.querySelector('#animate') !== null", 30)
            _type(driver, "#seed input", "4")
            _type(driver, "#prompt-1 textarea, #prompt-1 input", "smiling")
            driver.find_element("css selector", "#animate").click()
            ready = "const v = document.querySelector('#video video'); return v && v.readyState >= 2 ? v.duration : 0"
            duration = _wait(driver, ready)
            assert duration == pytest.approx(frames / fps, abs=0.5 / fps)
            note = driver.find_element("css selector", "#face-note").text
            assert "seed 4" in note  # the typed seed reached the app
            timings = driver.find_element("css selector", "#timings").text
            assert f"{frames} frames at {fps} fps" in timings
            src = driver.execute_script("return document.querySelector('#video video').currentSrc")
            assert src.startswith(url) and ".mp4" in src
            # everything the page loaded came from the app itself: no fonts, scripts or analytics from elsewhere
            loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            outside = [u for u in loaded if urlparse(u).scheme in ("http", "https") and urlparse(u).hostname
                       not in ("127.0.0.1", "localhost")]
            assert loaded and not outside, outside
            driver.save_screenshot(str(tmp_path / "demo.png"))
            assert (tmp_path / "demo.png").stat().st_size > 10_000
    finally:
        driver.quit()


def test_missing_chromium_skips_with_the_reason_printed(tmp_path, monkeypatch, capsys):
    import browser

    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        browser.chrome(tmp_path)
    assert "browser test skipped: Chromium not found" in capsys.readouterr().out
