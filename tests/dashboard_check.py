"""Loads dashboard pages in headless Chromium (Debian's chromium and chromedriver, driven
by Selenium) and reports what each page shows, as JSON on stdout, for a Rust test to check.

Usage: python3 dashboard_check.py REQUEST.json

REQUEST: {"base": "http://127.0.0.1:PORT", "screenshots": DIR,
          "pages": [{"name": "...", "path": "/ui/jobs/ID", "live": true}]}
With "live", the page is read after its first server-sent update arrived.
"""
import json
import os
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1500,1800"):
        options.add_argument(flag)
    service = Service(shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(service=service, options=options)


def texts(browser, selector):
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]


def read_page(browser, page, base, screenshots):
    browser.get(base + page["path"])
    if page.get("live"):
        WebDriverWait(browser, 20).until(
            lambda b: "updated" in b.find_element(By.ID, "updated").text)
    # Pause the live updates, so the page holds still while it is read.
    browser.execute_script("if (window.sluiceLive) window.sluiceLive.close();")
    shown = {
        "title": browser.title,
        "heading": texts(browser, "h1"),
        "state": texts(browser, "h1 .state"),
        "live": browser.find_element(By.ID, "updated").text,
        "vertices": [
            {
                "name": g.get_attribute("data-name"),
                "condition": g.get_attribute("data-condition"),
                "classes": g.get_attribute("class"),
                "bottleneck": g.get_attribute("data-bottleneck") == "true",
                "busy": float(g.get_attribute("data-busy")),
                "backpressured": float(g.get_attribute("data-backpressured")),
                "fill": g.find_element(By.CSS_SELECTOR, "rect").get_attribute("fill"),
                "text": g.text,
            }
            for g in browser.find_elements(By.CSS_SELECTOR, "svg.graph g.vertex")
        ],
        "checkpoints": [
            {"id": r.get_attribute("data-checkpoint"), "status": r.get_attribute("data-status")}
            for r in browser.find_elements(By.CSS_SELECTOR, "#checkpoints tbody tr")
        ],
        "checkpoint_subtasks": len(browser.find_elements(By.CSS_SELECTOR, "#checkpoint-subtasks tbody tr")),
        "models": {
            panel.get_attribute("data-model"): {
                dd.get_attribute("data-metric"): dd.text
                for dd in panel.find_elements(By.CSS_SELECTOR, "dd[data-metric]")
            }
            for panel in browser.find_elements(By.CSS_SELECTOR, ".model")
        },
        "exceptions": texts(browser, "#exceptions pre"),
        "explain": "\n".join(texts(browser, "#explain")),
        "jobs": [r.get_attribute("data-job") for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")],
        "text": browser.find_element(By.TAG_NAME, "body").text,
    }
    os.makedirs(screenshots, exist_ok=True)
    browser.save_screenshot(os.path.join(screenshots, page["name"] + ".png"))
    return shown


def main():
    request = json.load(open(sys.argv[1]))
    browser = driver()
    try:
        report = {p["name"]: read_page(browser, p, request["base"], request["screenshots"])
                  for p in request["pages"]}
    finally:
        browser.quit()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
