"""The admin console in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against the identity service on a socket.

An administrator with TOTP signs in (step-up to ``urn:tessera:acr:mfa``), opens a user's
sessions, revokes one through the confirmation page, and a verifier following the live
SSE feed then rejects that session's token. The journey page shows the token's path:
issued, allowed, session revoked, denied. Screenshots go to ``data/screenshots/``.

Chromium is installed with apt when missing (as root); where that is impossible the test
is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tessera.core.acr import ACR_MFA
from tessera.core.clock import FixedClock, SystemClock
from tessera.core.secrets import token_hash
from tessera.identity.compose import Identity
from tessera.settings import Settings
from tessera.verifier import Denied
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.conftest import IN_CI, ISSUER, make_settings
from tests.system._browser_wait import wait_replaced
from tests.system.conftest import LiveService

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "data" / "screenshots"
PASSWORD = "correct horse battery"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--window-size=1400,1000")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the console browser test needs {reason} in CI")
    pytest.skip(reason)


def _ensure_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable("chromium and chromium-driver (/usr/bin/chromium); installing them "
                     "needs root and apt-get")
    result = subprocess.run(
        ["bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                       "apt-get install -y -qq chromium chromium-driver"],
        capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0 or not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _unavailable(f"chromium and chromium-driver (apt-get failed: "
                     f"{result.stderr.strip()[-500:]})")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium (pip install -e '.[dev]')")
    _ensure_chromium()
    profile = tempfile.mkdtemp(prefix="tessera-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class _WallClock(FixedClock):
    """The identity on real time, like the verifier: the journey's order is then the
    order things happened in across both."""

    def now(self) -> float:
        return time.time()


@pytest.fixture
def clock() -> FixedClock:
    return _WallClock()


@pytest.fixture
def decision_log(tmp_path: Path) -> Path:
    return tmp_path / "decisions.jsonl"


@pytest.fixture
def settings(tmp_path: Path, decision_log: Path) -> Settings:
    return make_settings(tmp_path, console={"required_acr": ACR_MFA,
                                            "decision_logs": [str(decision_log)]})


def _file_logger(path: Path) -> logging.Logger:
    """Where the verifier writes its decisions: the file the console's journey reads."""
    logger = logging.getLogger(f"tests.console.decisions.{uuid.uuid4().hex}")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _navigate(driver: Any, element: Any, *, submit: bool = False) -> None:
    """Click (or submit) and wait until the next page replaced this one."""
    element.submit() if submit else element.click()
    wait_replaced(driver, element)


def _revoke_in_browser(driver: Any, url: str, code: str, username: str, sid: str) -> Path:
    """Sign in, find the user's sessions, revoke one, confirm; returns the screenshot."""
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/console/sessions")
    assert "/console/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys("root")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "totp_code").send_keys(code)
    _navigate(driver, driver.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert driver.current_url.endswith("/console/sessions"), driver.current_url
    assert "urn:tessera:acr:mfa" in driver.find_element(By.TAG_NAME, "header").text
    filters = driver.find_element(By.CSS_SELECTOR, "form.filters")
    filters.find_element(By.NAME, "username").send_keys(username)
    _navigate(driver, filters.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    _navigate(driver, driver.find_element(By.LINK_TEXT, username))  # the user's sessions
    assert f"Sessions of {username}" in driver.find_element(By.TAG_NAME, "h1").text
    row = driver.find_element(By.XPATH, f"//tr[.//a[text()='{sid}']]")
    _navigate(driver, row.find_element(By.NAME, "revoke-session"))
    assert f"Revoke session {sid}" in driver.find_element(By.TAG_NAME, "h1").text
    _navigate(driver, driver.find_element(By.NAME, "confirm-revoke"))
    notice = driver.find_element(By.CSS_SELECTOR, ".notice").text
    assert notice == "Session revoked.", notice
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "console-revoked-session.png"
    assert driver.save_screenshot(str(shot))
    return shot


def _journey_in_browser(driver: Any, url: str, digest: str
                        ) -> tuple[list[tuple[str, ...]], Path]:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/console/journey")
    box = driver.find_element(By.NAME, "needle")
    box.send_keys(digest)
    _navigate(driver, box, submit=True)
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in driver.find_elements(By.CSS_SELECTOR, "tbody tr")]
    shot = SCREENSHOTS / "console-journey.png"
    assert driver.save_screenshot(str(shot))
    return [(c[1], c[2], c[3], c[4]) for c in cells], shot


async def test_revoking_a_session_in_the_console_makes_a_verifier_reject_its_token(
        live: LiveService, identity: Identity, clock: FixedClock, browser: Any,
        decision_log: Path) -> None:
    started = time.perf_counter()
    root = await live.driver.user("root", roles=("platform-admin",))
    async with identity.store.unit_of_work(read_only=True) as uow:
        root_user = await uow.users.get(root)
    assert root_user is not None
    secret = (await identity.totp.provision(root_user, actor="test")).secret
    app = await live.driver.web_client()
    username = f"user-{uuid.uuid4().hex[:6]}"
    await live.driver.user(username)
    tokens = await live.driver.login_tokens(app, username=username)
    token = tokens["access_token"]
    sid = (await identity.token_state.check(token, audience="https://api.example")).sid

    feed = await live.feed_client()
    assert feed.secret
    verifier = VerifierService(VerifierSettings(
        issuer=ISSUER, identity_url=live.url, audience="https://api.example",
        service_name="orders", client_id=feed.client_id, client_secret=feed.secret,
        feed_heartbeat_timeout=2.0), clock=SystemClock(), logger=_file_logger(decision_log))
    await verifier.start(wait=5)
    try:
        allowed = await verifier.check(token, route="GET /orders", correlation_id="req-1")
        assert allowed.sid == sid

        code = pyotp.TOTP(secret).at(clock.now())
        shot = await asyncio.to_thread(_revoke_in_browser, browser, live.url, code,
                                       username, sid)
        print(f"\nconsole screenshot: {shot}")

        deadline = time.perf_counter() + 5
        while True:
            try:
                await verifier.check(token, route="GET /orders", correlation_id="req-2")
            except Denied as denied:
                assert denied.reason.value == "session_revoked", denied.reason
                break
            assert time.perf_counter() < deadline, "the verifier still accepts the token"
            await asyncio.sleep(0.05)
    finally:
        await verifier.aclose()

    steps, journey_shot = await asyncio.to_thread(_journey_in_browser, browser, live.url,
                                                  token_hash(token))
    print(f"journey screenshot: {journey_shot}")
    assert steps == [("identity", "session.created", "", ""),
                     ("identity", "token.issued", "", ""),
                     ("orders", "access.allowed", "allowed", "valid"),
                     ("identity", "session.revoked", "", "console"),
                     ("orders", "access.denied", "denied", "session_revoked")], steps
    assert time.perf_counter() - started < 40
