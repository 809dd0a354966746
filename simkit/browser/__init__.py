"""Real Chromium tabs against a real ``LocalServer``: the ``browser`` runtime and the
calibration of the tab model (``python -m simkit calibrate``).

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package), started directly (never
``playwright install``). The browser runtime (:mod:`simkit.browser.runtime`) drives it
through raw CDP (:mod:`simkit.browser.cdp`), so its pages can be hidden, frozen and sent to
the back/forward cache; the calibration attaches the ``playwright`` Python package to it.
"""

from simkit.browser.chromium import CHROMIUM, Chromium, browser_missing

__all__ = ["CHROMIUM", "Chromium", "browser_missing"]
