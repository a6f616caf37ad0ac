"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real monitor
populated by a short run. Screenshots go to ``tmp_path`` (and ``artifacts/screenshots/``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from tests.monitor.api.conftest import TOKEN, make_settings
from tests.monitor.api.live import live_monitor

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="apt-get install -y chromium (.ci/run does)")


@pytest.fixture
def monitor(populated, tmp_path, trained_models_dir):
    store, info = populated
    with live_monitor(make_settings(tmp_path, trained_models_dir), store) as url:
        yield url, store, info


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    origin = urlsplit(url).netloc
    foreign, errors = [], []
    page.on("request", lambda r: foreign.append(r.url) if urlsplit(r.url).netloc not in (origin, "") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{url}/ui/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page, foreign, errors


def _save(page, tmp_path, name):
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / name)
    return path


def test_the_dashboard_shows_the_grid_a_timeline_and_distributions(monitor, browser, tmp_path):
    url, store, info = monitor
    page, foreign, errors = _open(browser, url)
    rows = page.locator("#grid tbody tr")
    assert rows.count() == len(info.features) + 1  # and the prediction
    # the Fahrenheit client: temp's mean shift is over twice its floor in skew, and drawn so
    cell = page.locator('#grid td.cell[data-feature="temp"][data-test="mean_shift"] div.skew')
    assert float(cell.get_attribute("data-ratio")) >= 2
    assert cell.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(226, 98, 91)"
    quiet = page.locator('#grid td.cell[data-feature="hum"][data-test="mean_shift"] div.skew')
    assert float(quiet.get_attribute("data-ratio")) < 1
    # the timeline of the worst feature, one point per window, against its floor
    page.locator('#grid td.cell[data-feature="temp"][data-test="mean_shift"]').click()
    chart = page.locator('#timelines svg.chart[data-mode="skew"][data-test="mean_shift"]')
    chart.wait_for()
    assert chart.locator("circle").count() == len(info.window_ids)
    assert len(chart.locator("polyline.effect").get_attribute("points").split()) == len(info.window_ids)
    assert chart.locator("polyline.floor").count() == 1
    # clicking the last point shows that window's distribution against the baseline
    chart.locator(f'circle[data-window-id="{info.window_ids[-1]}"]').click()
    expect(page.locator("#dist-window")).to_have_text(str(info.window_ids[-1]))
    page.locator("#distribution svg.histogram rect.bar.window").first.wait_for(state="attached")
    assert page.locator("#distribution svg.histogram rect.bar.reference").count() == 30
    _save(page, tmp_path, "dashboard.png")  # the README's picture: the Fahrenheit window against the baseline
    page.locator("input[name=view][value=cdf]").check()
    page.locator("#distribution svg.cdf polyline.cdf.window").wait_for(state="attached")
    page.locator('#grid th.feature:text-is("season")').click()
    page.locator("#distribution svg.categories rect.bar.window").first.wait_for(state="attached")
    assert page.locator("#dist-report").get_attribute("href") == f"/reports/{info.window_ids[-1]}"
    _save(page, tmp_path, "dashboard-categories.png")
    assert foreign == [] and errors == []


def test_acknowledging_and_silencing_from_the_dashboard_go_through_the_api(monitor, browser, tmp_path):
    url, store, info = monitor
    firing = store.list_alerts(state="firing")
    assert firing, "the short run raises alerts"
    page, foreign, errors = _open(browser, url)
    fp = firing[0].fingerprint
    row = page.locator(f'#alerts tr[data-fingerprint="{fp}"]')
    # without the token the dashboard says so, and the alert stays as it was
    row.locator("button.ack").click()
    expect(page.locator("#status")).to_contain_text("API token")
    assert not store.get_alert(fp).acknowledged
    page.fill("#token", TOKEN)
    page.click("#save-token")
    page.wait_for_selector("body[data-ready=true]")
    row.locator("button.ack").click()
    row.locator("td.state:has-text('acknowledged by dashboard')").wait_for()
    assert store.get_alert(fp).acknowledged_by == "dashboard"
    assert httpx.get(f"{url}/alerts/{fp}").json()["acknowledged"] is True
    row.locator("button.silence").click()
    expect(page.locator("#status")).to_contain_text("/silences")
    (silence,) = store.list_silences()
    assert {(m["name"], m["value"]) for m in silence.matchers} >= {("feature", firing[0].feature)}
    row.locator("td.state:has-text('silenced')").wait_for()
    _save(page, tmp_path, "dashboard-acknowledged.png")
    assert foreign == [] and errors == []


def test_a_report_opens_from_the_dashboard_without_leaving_the_monitor(monitor, browser, tmp_path):
    url, store, info = monitor
    page, foreign, errors = _open(browser, url)
    page.locator(f'#windows tr[data-window-id="{info.buggy_ids[0]}"] a:text-is("report")').click()
    page.wait_for_selector("#skewwatch-scores table tbody tr.critical", timeout=60_000)
    page.locator("[id^=root_] *").nth(10).wait_for(state="attached", timeout=60_000)  # Evidently drew
    _save(page, tmp_path, "report.png")
    assert foreign == []
