"""The web page in Debian's headless Chromium: pick an image, read the predicted class, see Grad-CAM, screenshot."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from http_client import png_bytes, post_images
from synth import CLASS_COLOURS, rgb_image

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1100,900"]

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="Debian chromium and chromium-driver are not installed "
                                       "(apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    os.environ.setdefault("SE_AVOID_STATS", "true")  # no usage statistics sent by Selenium
    opts = webdriver.ChromeOptions()
    for f in FLAGS:
        opts.add_argument(f)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait_text(driver, css: str, timeout: float = 20) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css).text.strip()
                                         not in ("", "…"))
    return driver.find_element(By.CSS_SELECTOR, css).text.strip()


def test_page_upload_predicts_and_explains(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(served.url + "/")
    assert _wait_text(browser, "#model-name") == "colours"
    facts = _wait_text(browser, "#model-facts")
    assert "shallow" in facts and "3 classes" in facts and "test accuracy" in facts and "%" in facts
    # nothing chosen yet: no empty result box with a broken image (CSS once overrode the hidden attribute)
    assert not browser.find_element(By.ID, "result").is_displayed()

    data = png_bytes(rgb_image(CLASS_COLOURS["blue"], 48, seed=7))
    img = tmp_path / "blue-square.png"
    img.write_bytes(data)
    expected = post_images(served.url, [("b.png", data)]).json()["predictions"][0]["top"]

    browser.find_element(By.ID, "file").send_keys(str(img))
    top1 = _wait_text(browser, "#top1-class")
    assert top1 == expected[0]["class"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#topk li")
    assert len(rows) == len(expected) == 3                        # top-5 of a 3-class model
    assert [r.find_element(By.CSS_SELECTOR, ".label").text for r in rows] == [t["class"] for t in expected]
    assert browser.find_element(By.ID, "file-name").text == "blue-square.png"
    assert browser.find_element(By.ID, "error").get_attribute("hidden") is not None

    # Grad-CAM on request: ticking the box asks again about the image on show
    browser.find_element(By.ID, "want-cam").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "cam-figure").is_displayed())
    assert browser.find_element(By.ID, "cam").get_attribute("src").startswith("data:image/png;base64,")

    shot = tmp_path / "serve-page.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000
    if os.environ.get("CONVCLASS_SCREENSHOT"):   # keep a copy for the docs
        shutil.copy(shot, os.environ["CONVCLASS_SCREENSHOT"])
    # the page's Content-Security-Policy blocked nothing it needs
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def test_page_shows_server_error_for_bad_file(served, browser, tmp_path):
    from selenium.webdriver.common.by import By
    browser.get(served.url + "/")
    _wait_text(browser, "#model-name")
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is text, not a picture")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    msg = _wait_text(browser, "#error")
    assert "not an image" in msg
