"""The study's rater page in a real (headless) browser: three pairs answered by clicking, the videos decode and play,
the answers land in the file as clicked, the page resumes after the browser is closed, the admin page shows it."""

from __future__ import annotations

import sqlite3

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from faceanim.study import StudyConfig  # noqa: E402

from browser import chrome  # noqa: E402
from study_helpers import Server, make_study  # noqa: E402

CLICKS = [("frame", "left"), ("video", "right"), ("alignment", "left")]


def _wait(driver, condition, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _progress_is(text):
    return lambda d: d.find_element("id", "progress").text == text


def _videos_playing(d) -> bool:
    return d.execute_script(
        "return ['left', 'right'].every(id => { const v = document.getElementById(id);"
        " return v.readyState >= 2 && v.videoWidth > 0 && !v.paused; });")


def test_a_rater_completes_three_pairs_in_a_browser_and_resumes(tmp_path):
    store = make_study(tmp_path, StudyConfig(raters=2, per_rater=5, attention_rate=0), faces=2, real_videos=True)
    (_, token), _ = store.rater_tokens()
    driver = chrome(tmp_path)
    try:
        with Server(store.path) as server:
            url = f"{server.base}/r/{token}"
            driver.get(url)
            _wait(driver, _progress_is("0 / 5"))
            shown = []
            for k in range(3):
                _wait(driver, _videos_playing)  # both MP4s decode and loop
                prompt = driver.find_element("id", "prompt").text
                shown.append(prompt.strip("\u201c\u201d"))
                button = driver.find_element("id", "submit")
                assert not button.is_enabled()  # every question must be answered first
                for q, side in CLICKS:
                    driver.find_element("css selector", f"label:has(#{q}-{side})").click()
                assert driver.find_elements("css selector", "#questions input[value=none]") == []  # no tie offered
                if k == 2:
                    driver.save_screenshot(str(tmp_path / "rater.png"))
                button.click()
                _wait(driver, _progress_is(f"{k + 1} / 5"))
            driver.quit()

            # the rater closes the browser and opens the link again later: three answered, the fourth shown
            driver = chrome(tmp_path / "again")
            driver.get(url)
            _wait(driver, _progress_is("3 / 5"))
            _wait(driver, _videos_playing)

            driver.get(f"{server.base}/admin/{store.meta['admin_token']}")
            _wait(driver, lambda d: len(d.find_elements("css selector", "#rows tr")) == 2)
            cells = [c.text for c in driver.find_elements("css selector", "#rows tr:first-child td")]
            assert cells[0] == "rater-1" and cells[1] == "3 / 5" and cells[5] == url
    finally:
        driver.quit()
    con = sqlite3.connect(store.path)
    rows = con.execute("SELECT i.prompt, a.frame, a.video, a.alignment FROM answers a JOIN items i ON i.id = a.item_id "
                       "ORDER BY i.position").fetchall()
    con.close()
    assert rows == [(p, "left", "right", "left") for p in shown]
