"""Waiting for a page to replace another in headless Chromium, without the driver's race."""

from __future__ import annotations

from typing import Any

_GONE = ("does not belong to the document", "No node with given id")
"""What chromedriver says, instead of a stale-element error, when it is asked about an
element of a page that is being replaced (seen with Chromium 156)."""


def wait_replaced(driver: Any, element: Any, *, timeout: float = 10) -> None:
    """Wait until ``element``'s page was replaced by the next one."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.wait import WebDriverWait

    def replaced(_: Any) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if any(text in str(exc) for text in _GONE):
                return True
            raise
        return False

    WebDriverWait(driver, timeout).until(replaced)
