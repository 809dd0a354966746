"""Real Chromium tabs against a real ``LocalServer``: the ``browser`` runtime and the
calibration of the tab model (``python -m simkit calibrate``).

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package) and the ``playwright`` Python
package (never ``playwright install``: Chromium is started directly, Playwright attaches to
it over CDP, so the page lifecycle can be frozen and resumed).
"""

from simkit.browser.chromium import CHROMIUM, Chromium, browser_missing

__all__ = ["CHROMIUM", "Chromium", "browser_missing"]
