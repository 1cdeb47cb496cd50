"""The console in a real browser (Debian's chromium through chromedriver, headless) against the sandbox.

Nothing downloads a browser: the driver path is given to Selenium, so Selenium Manager never runs. The run page
must follow the run live (server-sent events) without a reload; the screenshots in README come from here.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import TOKENS, Console

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
# The README's screenshots are these tests' own; they are rewritten only when asked (a test run leaves the tree clean):
#   KUBEOPS_SCREENSHOTS=1 python -m pytest tests/console/test_console_browser.py
UPDATE_SCREENSHOTS = os.environ.get("KUBEOPS_SCREENSHOTS") == "1"

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,860", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The browser pointed at one console; every page it loads is checked for secrets."""

    def __init__(self, driver: Any, base: str) -> None:
        self.driver, self.base = driver, base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.no_secrets()

    def no_secrets(self) -> None:
        source = self.driver.page_source
        for secret in TOKENS.values():
            assert secret not in source

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, predicate: Callable[[], Any], timeout_s: float = 30) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        def check(_: Any) -> Any:
            try:
                return predicate()
            except StaleElementReferenceException:
                return False
            except WebDriverException as exc:
                if "does not belong to the document" in str(exc):
                    return False
                raise

        return WebDriverWait(self.driver, timeout_s, poll_frequency=0.05).until(check)

    def login(self, role: str) -> None:
        self.driver.delete_all_cookies()
        self.open("/login")
        self.find("#token").send_keys(TOKENS[role])
        self.find("#login").click()
        self.wait(lambda: self.driver.current_url.endswith("/runs"))

    def text(self, css: str) -> str:
        """The element's text, read again if the live stream replaced it meanwhile."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        for _ in range(20):
            try:
                return str(self.find(css).text)
            except StaleElementReferenceException:
                pass
            except WebDriverException as exc:  # chromedriver's word for the same race
                if "does not belong to the document" not in str(exc):
                    raise
            time.sleep(0.05)
        raise AssertionError(f"{css} kept changing")

    def status(self) -> str:
        return self.text("#run-status")


def serve(console_factory: Callable[..., Console], browser: Any, scenario: str) -> tuple[Console, Page]:
    console = console_factory(scenario)
    return console, Page(browser, console.serve())


def test_launch_a_decommission_see_the_plan_confirm_and_watch_it_live(console_factory: Callable[..., Console],
                                                                        browser: Any, tmp_path: Path) -> None:
    shots = DOCS_IMG if UPDATE_SCREENSHOTS else tmp_path
    console, page = serve(console_factory, browser, "default")
    page.login("operator")
    # a harmless run first, so the Runs page shows more than one
    page.open("/launch?playbook=hello&who=ops")
    page.find("#plan").click()
    page.wait(lambda: page.all("#confirm"))
    page.find("#confirm").click()
    page.wait(lambda: page.status() == "done")

    # the Runs list picks up a run started elsewhere (here: straight through the engine) without a reload
    from kubeops.engine.api import load_playbook
    from kubeops.engine.audit import Actor

    page.open("/runs")
    assert len(page.all("#runs tbody tr")) == 1
    console.app.state.launcher.launch(load_playbook("hello"), params={"who": "cron"}, actor=Actor("ci", "operator"))
    page.wait(lambda: len(page.all("#runs tbody tr")) == 2, timeout_s=15)

    page.open("/nodes")
    row = page.find('tr[data-node="worker-2"]')
    assert "cordoned" not in row.text
    row.find_element("link text", "decommission").click()
    assert page.find("#p-node").get_attribute("value") == "worker-2"  # Launch opened pre-filled
    page.find("#plan").click()
    page.wait(lambda: page.all("#plan-steps"))
    plan = page.find("#plan-steps").text
    assert "would cordon node worker-2" in plan or "would cordon" in plan
    assert page.find("#lock-verdict").text.startswith("free")
    assert page.find("#window-verdict").text.startswith("open")
    assert "unschedulable" not in console.sandbox.kubectl("get", "node", "worker-2", "-o", "json").stdout
    page.find("#confirm").click()
    page.wait(lambda: "/runs/" in page.driver.current_url)
    # no reload from here on: the page follows the run through server-sent events
    page.wait(lambda: page.status() == "done", timeout_s=60)
    body = page.find("#run-body")
    assert body.get_attribute("data-updated")  # it was updated in place
    statuses = {li.get_attribute("data-step"): li.get_attribute("data-status") for li in page.all("#timeline li")}
    assert statuses["cordon"] == "done" and statuses["drain"] == "done"
    shots.mkdir(parents=True, exist_ok=True)
    assert page.driver.save_screenshot(str(shots / "console-run.png"))
    page.no_secrets()

    page.open("/nodes")
    assert "cordoned" in page.find('tr[data-node="worker-2"]').text
    page.open("/runs")
    assert len(page.all("#runs tbody tr")) == 3
    assert page.driver.save_screenshot(str(shots / "console-runs.png"))
    page.open("/activity")
    assert page.find("#activity").text.count("launch") == 3


def test_a_run_blocked_by_a_budget_is_resumed_from_its_page(console_factory: Callable[..., Console],
                                                            browser: Any) -> None:
    console, page = serve(console_factory, browser, "pdb-blocked")
    page.login("operator")
    page.open("/launch?playbook=drain-node&node=worker-0&timeout_s=2")
    page.find("#plan").click()
    page.wait(lambda: page.all("#confirm"))
    page.find("#confirm").click()
    page.wait(lambda: "/runs/" in page.driver.current_url)
    run_url = page.driver.current_url
    page.wait(lambda: page.status() == "failed", timeout_s=60)
    assert "critical" in page.text("#run-error")  # the budget that said no is named
    page.wait(lambda: page.all("#resume"), timeout_s=10)  # offered once the run's thread has ended

    # a viewer sees the same failed run without any control, and a hand-made POST is refused
    page.login("viewer")
    page.driver.get(run_url)
    assert page.status() == "failed" and not page.all("#resume") and not page.all("#nav-launch")
    csrf = page.find('input[name="csrf"]').get_attribute("value")
    code = page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(location.pathname + '/resume', {method: 'POST', headers: {'X-CSRF-Token': arguments[0]}})"
        ".then(r => done(r.status));", csrf)
    assert code == 403

    # make the budget allow it, then resume from the page
    patched = console.sandbox.kubectl("patch", "pdb", "critical", "-n", "apps", "--type=merge",
                                      "-p", '{"spec": {"minAvailable": 1}}')
    assert patched.returncode == 0, patched.stderr
    page.login("operator")
    page.driver.get(run_url)
    page.find("#resume").click()
    page.wait(lambda: page.status() == "done", timeout_s=60)
    assert re.search(r"resume\s+operator \(operator\)", page.find("table.audit").text)
    page.open("/nodes")
    assert "cordoned" in page.find('tr[data-node="worker-0"]').text


def test_screenshots_are_committed_beside_the_readme() -> None:
    """The README shows them; a missing file would be a broken image on the project page."""
    readme = (DOCS_IMG.parents[1] / "README.md").read_text(encoding="utf-8")
    for name in ("console-runs.png", "console-run.png"):
        assert f"docs/img/{name}" in readme
        assert (DOCS_IMG / name).stat().st_size > 10_000
    assert shutil.which("chromium") or os.path.exists(CHROMIUM)
