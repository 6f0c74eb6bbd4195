"""The login form in a real browser (headless Chromium, as tests/system/test_console_browser
does): what Chromium sends with our form posts (``Origin``, ``Sec-Fetch-Site``) passes the
cross-origin check and the transaction-bound CSRF token, and the login completes with a
code at the client's redirect URI."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.support import pkce_pair
from tests.system._browser_wait import wait_replaced
from tests.system.conftest import LiveService
from tests.system.test_console_browser import browser  # noqa: F401  (the Chromium fixture)

PASSWORD = "correct horse battery"


def _sign_in(driver: Any, url: str) -> str:
    from selenium.webdriver.common.by import By
    driver.delete_all_cookies()
    driver.get(url)
    assert "Sign in" in driver.title, driver.page_source[:500]
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    button = driver.find_element(By.CSS_SELECTOR, "button[type=submit]")
    button.click()
    wait_replaced(driver, button)
    return str(driver.current_url)


async def test_a_real_browser_signs_in_through_the_hardened_form(
        live: LiveService, browser: Any) -> None:  # noqa: F811
    landing = f"{live.url}/healthz"
    app = await live.driver.web_client(redirect_uris=(landing,))
    await live.driver.user("alice")
    query = urlencode({"response_type": "code", "client_id": app.client_id,
                       "redirect_uri": landing, "scope": "openid", "state": "st-1",
                       "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"})
    arrived = await asyncio.to_thread(_sign_in, browser, f"{live.url}/authorize?{query}")
    assert arrived.startswith(landing), arrived
    params = parse_qs(urlsplit(arrived).query)
    assert params["state"] == ["st-1"] and params["code"][0]
