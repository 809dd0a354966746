"""The page ``LocalServer`` serves at ``/``: a real tab running the kit's client policies.

The page lives in two static files beside this module, so editors, linters and
``node --check`` see them as what they are: ``static/page.html`` (the markup, with a
``<!-- page.js -->`` line where the script goes) and ``static/page.js`` (the script,
inlined there, so the page is still one response with no second request). :data:`PAGE` is
the assembled page, read once at import with :mod:`importlib.resources`.

Open it in a browser, reload, open a second tab, and watch the counts. Query parameters
choose the client policy, with the names of :mod:`simkit.model.client` (defaults in
brackets):

- ``identity`` [per-tab]: ``per-tab`` (sessionStorage), ``shared`` (localStorage, the
  ``person``'s own id), ``fresh-per-load``;
- ``unload`` [pagehide]: ``none``, ``beforeunload`` or ``pagehide`` (close 1000 there);
- ``visibility`` [keep]: ``keep`` or ``disconnect-when-hidden``;
- ``guard`` [none]: ``none`` or ``single-flight`` (wait up to ``guard_wait`` s [3]);
- ``backoff`` [exponential]: ``immediate``, ``exponential``, ``full-jitter``, ``rfc6455``
  (with ``base``, ``factor``, ``max``, ``rand``, ``first_max`` as in ``Backoff``);
- ``on_resume`` / ``on_pageshow`` [reconnect]: ``reconnect`` (a ``resume`` / ``pageshow``
  persisted handler closes the socket that lived through the freeze or the back/forward
  cache and connects at once, once per wake-up: a restore fires both events) or ``none``
  (no handler: Chromium closes that socket itself as the page wakes, the server sees 1001
  and the page 1006, and the page's ordinary close handling reconnects it after a backoff);
- ``strict`` [0]: 1 mounts the connect effect twice, as React StrictMode does;
- ``scale`` [1]: wall seconds per policy second (the browser runtime's time scale);
- ``tab``: the tab's index; its connections then carry ``link=tab*10000+n`` so the server
  can attribute them; ``ws``: the port to connect to (a proxy), default the page's own;
- ``stats`` [1]: 0 stops polling ``/stats``.

It answers the server's application-level ``{"t":"ping"}`` with ``{"t":"pong"}`` (only while
its code runs: a frozen page does not), presents its resume ``session`` token, and exposes
its state as ``window.simkit`` (``state``, ``user``, ``pushes``, ``opens``, ``closes``, ...).
When a ``window.simkitReport`` binding exists (the browser runtime installs one), every
event is also reported to it, as one JSON string.
"""

from __future__ import annotations

from importlib.resources import files

from simkit.model.errors import SimkitError

SCRIPT_MARK = "<!-- page.js -->\n"  # the line of page.html that page.js replaces


class PageMissing(SimkitError):
    """The page's static files are missing or malformed (a broken installation)."""


def static_text(name: str) -> str:
    """A file of ``simkit/net/static/`` as text (``\n`` newlines, whatever the checkout)."""
    try:
        return files("simkit.net").joinpath("static", name).read_text(encoding="utf-8")
    except (OSError, ValueError) as error:
        raise PageMissing(
            f"simkit/net/static/{name} cannot be read ({error}); reinstall simkit"
        ) from error


def assemble(html: str, script: str) -> str:
    """The page: ``html`` with its one :data:`SCRIPT_MARK` line replaced by ``script``."""
    if html.count(SCRIPT_MARK) != 1:
        raise PageMissing(
            f"page.html must hold the line {SCRIPT_MARK.strip()!r} exactly once, "
            f"found {html.count(SCRIPT_MARK)}"
        )
    return html.replace(SCRIPT_MARK, script)


PAGE = assemble(static_text("page.html"), static_text("page.js"))
