"""report.html in a real browser (Debian's chromium, driven by selenium): the tables and figures render with no
console error and no request, a column sorts, each run opens in one click, the floor, ceiling and chance are
marked, and screenshots at desktop and phone widths are saved. Skipped without chromium, chromedriver and selenium,
except in CI (CPEP_REQUIRE_BROWSER=1, .ci/run installs them), where that is a failure."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from test_report import SUITE_TOML, fixture_records, make_record

from bench import suites
from bench.report import build as report
from bench.report import figures, html

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
BOUNDS = {"emg_log_power": {0: (0.35, 0.30, None, None), 1: (0.36, 0.31, None, None)},
          "pose_features": {0: (0.90, 0.70, None, None), 1: (0.91, 0.72, None, None)}}


@pytest.fixture
def page(tmp_path):
    """The report of the fixture records (claims, stale and failed runs) with the floor and ceiling, written with
    its figures."""
    path = tmp_path / "suite.toml"
    path.write_text('include = ["bounds"]\n' + SUITE_TOML)
    suite = suites.load(str(path))
    records = fixture_records(suite) + [make_record(suite, v, s, m) for v, by in BOUNDS.items() for s, m in by.items()]
    for r in records:
        if r["variant"] in BOUNDS:
            r["not_applicable"] = {"zs_id": "no pose-aligned EMG embedding", "zs_unseen": "no pose-aligned EMG embedding"}
    rep = report.build(suite, records)
    out = tmp_path / "report"
    drawn = figures.write_all(rep, out)
    return rep, html.write(rep, records, out, drawn), drawn


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if webdriver is None or not CHROMIUM or not DRIVER:
        message = "chromium, chromedriver or selenium is missing (apt-get install chromium chromium-driver)"
        if os.environ.get("CPEP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CPEP_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))  # no driver download: Debian's
    yield driver
    driver.quit()


def wait_for(condition, what: str, seconds: float = 30.0):
    """condition() once it is truthy; fails naming `what` after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds:g} s for {what}")


def column(driver, index: int) -> list[float]:
    return [float(v) for v in driver.execute_script(
        "return Array.from(document.querySelectorAll('#main tbody:first-of-type tr'))"
        ".map(r => r.cells[arguments[0]].getAttribute('data-sort'));", index)]


def test_report_html_renders_sorts_and_opens_each_run(page, browser, tmp_path):
    rep, path, drawn = page
    text = path.read_text()
    assert "<script src" not in text and "<link" not in text and "<img" not in text  # nothing to fetch
    browser.set_window_size(*WIDTHS["desktop"])
    browser.get(path.as_uri())
    wait_for(lambda: browser.execute_script("return document.readyState") == "complete", "the page to load")

    # the tables: a row per variant (floor and ceiling below the others, with chance), a row per claim
    main = browser.execute_script("return Array.from(document.querySelectorAll('#main tbody:first-of-type tr'))"
                                  ".map(r => r.cells[0].textContent);")
    assert main == [rep.labels[v] for v in rep.variants if not rep.is_bound(v)]
    reference = browser.execute_script("return Array.from(document.querySelectorAll('#main tbody.reference tr'))"
                                       ".map(r => r.cells[0].textContent);")
    assert reference == ["floor: EMG log-power + LRfloor", "ceiling: pose features + LRceiling",
                         "chance (guessing)chance"]
    chance = browser.execute_script("return document.querySelector('#main tr.chance').cells[2].textContent;")
    assert chance == f"{rep.chance['lp_id']:.3f}"
    assert browser.execute_script("return document.querySelectorAll('#claims tbody tr').length") == len(rep.claims)
    colours = browser.execute_script(
        "return Array.from(document.querySelectorAll('#claims td.ok, #claims td.bad, #claims td.unsure'))"
        ".map(c => [c.textContent, getComputedStyle(c).backgroundColor]);")
    assert {verdict for verdict, _ in colours} == set(rep.claims["verdict"])
    assert len({(verdict, colour) for verdict, colour in colours}) == len({colour for _, colour in colours})

    # the figures: every SVG drawn, inline, with a size
    sizes = browser.execute_script("return Array.from(document.querySelectorAll('figure > svg'))"
                                   ".map(s => s.getBoundingClientRect().width * s.getBoundingClientRect().height);")
    assert len(sizes) == len([p for p in drawn if p.suffix == ".svg"]) >= 2 and min(sizes) > 1000

    # sorting: LP in-dist, the third column (method, n, then each metric and its paper number)
    lp = 2
    header = browser.find_elements("css selector", "#main thead th")[lp]
    assert header.text.startswith("LP in-dist")
    header.click()
    wait_for(lambda: header.get_attribute("aria-sort") == "descending", "the column to sort descending")
    values = column(browser, lp)
    assert values == sorted(values, reverse=True) and len(values) == len(main)
    header.click()
    wait_for(lambda: header.get_attribute("aria-sort") == "ascending", "the column to sort ascending")
    assert column(browser, lp) == sorted(values)

    # one click from the table to a run's configuration, code fingerprint, data identity and training curves
    browser.find_element("link text", "CPEP").click()
    run = browser.find_element("id", "run-cpep-0")
    assert not run.find_element("tag name", "pre").is_displayed()
    run.find_element("tag name", "summary").click()
    wait_for(lambda: "code fingerprint" in run.text, "the run's details to open")
    assert "data emg2pose-" in run.text and run.find_elements("css selector", "svg.curve")

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    browser.execute_script("window.scrollTo(0, 0)")  # the screenshots show the top: title and main table
    for name, size in WIDTHS.items():
        browser.set_window_size(*size)
        wait_for(lambda: browser.execute_script("return window.innerWidth") <= size[0], f"the {name} width")
        shot = tmp_path / f"report-{name}.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        # the page fits its width: wide tables scroll inside themselves
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
