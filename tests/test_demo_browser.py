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


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(driver, engine, url, folder): one browser and one served demo for the module."""
    tmp = tmp_path_factory.mktemp("browser")
    driver = chrome(tmp)
    try:
        with served_demo(tmp / "demo") as (engine, _, url):
            yield driver, engine, url, tmp
    finally:
        driver.quit()


READY = "const v = document.querySelector('#video video'); return v && v.readyState >= 2 ? [v.duration, v.currentSrc] : 0"


def test_page_animates_a_prompt_into_a_playing_video(page):
    driver, engine, url, tmp = page
    frames, fps = engine.defaults()["frames"], engine.defaults()["fps"]
    driver.get(url)
    _wait(driver, "return document.querySelector('#animate') !== null", 30)
    _type(driver, "#seed input", "4")
    _type(driver, "#prompt-1 textarea, #prompt-1 input", "smiling")
    driver.find_element("css selector", "#animate").click()
    duration, src = _wait(driver, READY)
    assert duration == pytest.approx(frames / fps, abs=0.5 / fps)
    assert "seed 4" in driver.find_element("css selector", "#face-note").text  # the typed seed reached the app
    assert f"{frames} frames at {fps} fps" in driver.find_element("css selector", "#timings").text
    assert src.startswith(url) and ".mp4" in src
    # everything the page loaded came from the app itself: no fonts, scripts or analytics from elsewhere
    loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in loaded if urlparse(u).scheme in ("http", "https") and urlparse(u).hostname
               not in ("127.0.0.1", "localhost")]
    assert loaded and not outside, outside
    driver.save_screenshot(str(tmp / "demo.png"))
    assert (tmp / "demo.png").stat().st_size > 10_000


def test_photo_upload_error_line_then_reconstruction(page):
    from PIL import Image

    driver, engine, url, tmp = page
    driver.get(url)
    _wait(driver, "return document.querySelector('#animate') !== null", 30)
    bad = tmp / "not-a-photo.png"
    bad.write_text("hello")
    upload = driver.find_element("css selector", "#photo input[type=file]")
    upload.send_keys(str(bad))
    _wait(driver, "return document.querySelector('#source input[value=photo]').checked", 30)  # upload → photo
    _type(driver, "#prompt-1 textarea, #prompt-1 input", "smiling")
    driver.find_element("css selector", "#animate").click()
    _wait(driver, "return document.body.innerText.includes('is not an image file')", 60)
    assert "Traceback" not in driver.execute_script("return document.body.innerText")
    # then a real photo (center square: 'aligned crop'), on a fresh page
    driver.get(url)
    _wait(driver, "return document.querySelector('#animate') !== null", 30)
    good = tmp / "photo.png"
    Image.new("RGB", (60, 40), (180, 120, 90)).save(good)
    driver.find_element("css selector", "#photo input[type=file]").send_keys(str(good))
    _wait(driver, "return document.querySelector('#source input[value=photo]').checked", 30)
    _type(driver, "#prompt-1 textarea, #prompt-1 input", "smiling")
    if engine.aligns_photos():  # dlib installed: skip its alignment (the box is hidden where photos are not aligned)
        driver.find_element("css selector", "#aligned input").click()
    driver.find_element("css selector", "#animate").click()
    _wait(driver, READY)
    _wait(driver, "return document.querySelector('#face-recon img') !== null", 30)
    assert "MSE" in driver.find_element("css selector", "#face-note").text


def test_missing_chromium_skips_with_the_reason_printed(tmp_path, monkeypatch, capsys):
    import browser

    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        browser.chrome(tmp_path)
    assert "browser test skipped: Chromium not found" in capsys.readouterr().out
