# %% [markdown] slideshow={"slide_type": "slide"}
# # 09 · Your own server: the kit's tabs against any WebSocket endpoint
#
# **What you'll learn:** how to point the kit's tabs (reloads, flaky networks, frozen pages,
# restarts) at a server that is not the kit's; what the kit can measure from outside (the
# clients and its fault proxy) and what it needs the server's help for (a few lines: the
# stats protocol); how the post-mortem's own FastAPI handler behaves under that load, and the
# same app with the kit's drop-in registry (`simkit.adapters`).
#
# **What you'll do:** start two real FastAPI apps, each in its own `uvicorn` process
# (`examples/postmortem_app.py`, the handler as the post-mortem shipped it, and
# `examples/fixed_app.py`, the same app with `SafeRegistry`); play `flaky-network` against
# both with `simkit.run(..., target=...)`; read the difference from the client side and
# through the stats route.
#
# **What you need:** nothing beyond the kit (FastAPI and uvicorn are its dependencies). The
# two runs play at the same time, in real time (a foreign server's timers are real): about
# 50 seconds.
#
# ## The question
#
# Every notebook so far played the kit's own servers. **Does *my* server keep its registry
# true when tabs reload, lose their network and come back?**

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; a fresh matplotlib may print a font-cache notice)
import asyncio
import inspect
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import simkit
from simkit.net.target import fetch_registry

pd.set_option("display.width", 120)
ROOT = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
sys.path.insert(0, str(ROOT))  # the examples/ folder of the source checkout

# %% [markdown]
# ## 1. Two apps, two processes
#
# Each app is started exactly as you would start yours, `uvicorn examples.X:app`, on a free
# port of 127.0.0.1, with uvicorn's defaults (its own keepalive pings every 20 s and gives up
# after 20 s more: the post-mortem's deployment). The last cell of the notebook stops both.

# %% slideshow={"slide_type": "slide"}
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(app: str) -> tuple[subprocess.Popen, int]:
    """``uvicorn examples.<app>:app`` on a free port; returns once it listens (or fails)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"examples.{app}:app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"uvicorn examples.{app}:app did not start")


servers = {name: start(name) for name in ("postmortem_app", "fixed_app")}
targets = {name: f"ws://127.0.0.1:{port}/ws" for name, (_, port) in servers.items()}
print("listening:", {name: proc.poll() is None for name, (proc, _) in servers.items()})

# %% [markdown]
# The post-mortem's handler, as written (a notifier also pushes to every registered user
# once a second, and a few lines answer the stats route):

# %%
import examples.postmortem_app as postmortem_app  # noqa: E402

print(inspect.getsource(postmortem_app.websocket_endpoint))

# %% [markdown]
# ## 2. What the kit sees, and what it needs your help for
#
# `simkit.run(scenario, strategy, runtime="live", target=URL)` plays the scenario's tabs
# under the strategy's *client* policy (here `postmortem-safe`'s: one id per user, close on
# `pagehide`, a connect guard, backoff) through the kit's fault proxy to `URL`. The server's
# registry and heartbeat are the target's own.
#
# - From the **clients**: connects, refused handshakes with their status, close codes and
#   who closed, messages each tab received (and *starved* tabs: connected, nothing heard for
#   10 s, on a server that pushes).
# - From the **proxy**: the server's open sockets are the upstream connections it still
#   holds, so `open_sockets`, `stale` (of those, the ones whose page is gone or replaced)
#   and `duplicates` are exact.
# - From the **stats protocol**, if the server implements it: each socket's query carries
#   `simkit_conn=<id>`, and `GET /simkit/registry` answers `{"entries": [[user,
#   simkit_conn], ...]}`; polled once a second, it gives `registry_entries`, `dangling` and
#   `unroutable`, computed as for the kit's own servers. Without it they are NaN and the
#   summary says why: never guessed.
#
# Both apps answer the stats route. `flaky-network`: 20 mobile tabs whose network drops
# silently for a while, then comes back (half then pull to refresh), for 30 s, then 15 s to
# settle. Both runs play at the same time.

# %%
def play(name: str) -> simkit.Result:
    return simkit.run(
        "flaky-network", "postmortem-safe", runtime="live", target=targets[name],
        tabs=20, duration=30, settle=15,
    )


with ThreadPoolExecutor(2) as pool:
    results = dict(zip(servers, pool.map(play, servers), strict=True))

# %%
# NBVAL_IGNORE_OUTPUT
# (real sockets, real time: the numbers move a little from run to run; the asserts below
# hold every time)
columns = ["peak_unroutable", "final_unroutable", "final_stale", "final_dangling",
           "final_open_sockets", "final_connected_tabs", "starved_tabs", "messages_received",
           "connects", "invariants_hold"]
table = pd.DataFrame({name: {c: r.summary[c] for c in columns} for name, r in results.items()})
table  # noqa: B018 (a notebook shows its last expression)

# %%
broken, fixed = results["postmortem_app"].summary, results["fixed_app"].summary
assert broken["peak_unroutable"] > 0 and not broken["invariants_hold"]
assert fixed["final_unroutable"] == fixed["final_stale"] == fixed["final_dangling"] == 0
assert fixed["invariants_hold"] and fixed["final_connected_tabs"] == fixed["final_live_tabs"] == 20
assert fixed["messages_received"] > 0 and fixed["starved_tabs"] == 0
# both apps answered the stats route all along, so the registry columns are measured, not NaN
assert broken["stats_failures"] == fixed["stats_failures"] == 0
assert "registry_entries" not in fixed["unknown_metrics"]
assert results["fixed_app"].timeseries["registry_entries"].iloc[-1] == 20
print("post-mortem app: live tabs no push reaches at some point:", broken["peak_unroutable"] > 0)
print("fixed app settles true (no unroutable, stale or dangling):", fixed["invariants_hold"])

# %% slideshow={"slide_type": "slide"}
# NBVAL_IGNORE_OUTPUT
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
for ax, (name, result) in zip(axes, results.items(), strict=True):
    ts = result.timeseries
    for metric in ("connected_tabs", "registry_entries", "stale", "unroutable"):
        ax.plot(ts["t"], ts[metric], label=metric, lw=1.2)
    ax.axvline(result.summary["duration"], color="grey", ls=":", lw=1)
    ax.set_title(name)
    ax.set_xlabel("time (s)")
axes[0].set_ylabel("count")
axes[0].legend(fontsize="small")
fig.tight_layout()

# %% [markdown]
# Read the left panel as the post-mortem's story on its own stack. A tab whose network came
# back reconnects while its old socket still looks open to the server (uvicorn's keepalive
# needs up to 40 s to notice). The new handler closes the old socket (on uvicorn's default
# WebSocket implementation `close()` returns at once), deletes the entry and registers the
# new one; then the **old** handler's `WebSocketDisconnect` branch runs `del conns[user_id]`
# and deletes the **new** entry. The tab is connected, and no push reaches it: `unroutable`
# climbs at the end of the workload, when the last outages end, and stays. Those tabs stop
# hearing the notifier, which is how a client-side-only run sees them (`starved_tabs`, once
# they have been silent for 10 s). The old half-open sockets stay open until the keepalive
# reaps them: `stale`.
#
# On the right, the same app with `SafeRegistry("kick-old-safe")`: the kick runs in the
# background, the old handler deletes only its own entry, and the kicked half-open sockets
# close within uvicorn's close timeout (10 s). Everything settles true.

# %% [markdown]
# ## 3. Through the stats protocol, by hand
#
# The same race with two sockets and no proxy: open a socket for `alice`, then a second one
# (a reload whose old socket is still open), and ask each app's registry.

# %%
async def two_sockets(name: str) -> list:
    from websockets.asyncio.client import connect

    url = targets[name]
    async with connect(f"{url}?user=alice&simkit_conn=1"):
        await asyncio.sleep(0.3)
        async with connect(f"{url}?user=alice&simkit_conn=2"):
            await asyncio.sleep(0.5)  # the old handler's cleanup has run
            _, port = servers[name]
            return await fetch_registry("127.0.0.1", port, timeout=2.0)


async def both() -> dict:
    return {name: await two_sockets(name) for name in servers}


after_reload = await both()  # noqa: F704 (a notebook cell runs in the kernel's loop)
for name, entries in after_reload.items():
    print(f"{name:15} GET /simkit/registry -> {entries}")
assert after_reload["postmortem_app"] == []  # the new socket is open and unregistered
assert after_reload["fixed_app"] == [("alice", "2")]

# %% [markdown]
# Two sockets were open for `alice` in both apps; the post-mortem's registry knows **none**
# of them (the old handler deleted the new entry), the fixed one knows the new one. On
# today's uvicorn this is not a race: it happens every time.
#
# ## 4. The fix, as a library
#
# `examples/fixed_app.py` is the same app with the registry replaced by the adapter; the
# handler shrinks to this:

# %%
import examples.fixed_app as fixed_app  # noqa: E402

print(inspect.getsource(fixed_app.websocket_endpoint))

# %% [markdown]
# `SafeRegistry(policy)` takes the kit's own pure policies (`kick-old-safe`, `multi`,
# `reject-new`), so your app runs what the kit measured: compare-and-delete, the kick in the
# background with a timeout (never awaited by the new handler), sends with a timeout that
# swallow the stack's disconnect errors, and an optional application-level heartbeat
# (`heartbeat=(interval, timeout)`) for frozen pages, which a protocol ping cannot find.
# `app.include_router(stats_router(registry))` answers the stats route; for a `websockets`
# server, `serve(..., process_request=stats_process_request(registry))`.
#
# For your own server: implement the stats route (or not: the client-side metrics still
# come, the rest is NaN with the reason), then from a terminal
#
# ```
# python -m simkit run --scenario flaky-network --strategy postmortem-safe \
#     --target ws://127.0.0.1:8000/ws --target-keepalive 40 --tabs 20 --duration 60
# ```
#
# `{user}` in the URL puts the claimed id in the path or query (`ws://host/ws/{user}`);
# `simkit.run(..., auth=lambda user: {"Authorization": ...})` adds headers to each handshake.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Your own front end: a leaky page beside a correct one
#
# The reload bugs this kit is about are born in front-end code. In page mode
# (`simkit.Browser(page=URL)`, `--page URL` on the command line) the kit's headless Chromium
# tabs load a page the kit did not write, play the scenario's verbs on it, and read the
# page's WebSockets from Chromium itself (CDP's Network domain), with no change to the page;
# `{ws}` in the URL becomes the address of the kit's fault proxy. `examples/frontends/` has
# two small pages that take their socket URL from `?ws=`: `leaky.html` opens a socket on
# every "mount", twice per load as React's StrictMode does in development, and never closes
# the old one; `correct.html` opens one per load and closes it on `pagehide`. Both play
# `reload-storm` (4 tabs, 30 s, time x0.1) against the kit's own server, in the headless
# Chromium the kit launches (its version is in the summary).

# %% slideshow={"slide_type": "slide"}
# NBVAL_IGNORE_OUTPUT
# (real Chromium: counts vary a little from run to run; the assertions below check the story)
from simkit.net import StaticSite

pages = {}
with StaticSite(Path("..") / "examples" / "frontends") as site:
    for name in ("leaky", "correct"):
        # scale 0.2: 40 scenario seconds in 8 s of wall time (at page mode's default 0.1,
        # four reloading tabs outran a busy 2-core machine and the run said so: not valid)
        page = f"{site.url}/{name}.html?ws={{ws}}"
        pages[name] = simkit.run("reload-storm", tabs=4, duration=30, settle=10,
                                 runtime=simkit.Browser(page=page, scale=0.2))
SOCKETS = ["loads", "sockets", "sockets_per_load_mean", "sockets_per_load_max", "max_open",
           "left_open"]
RUN = ["peak_stale", "mean_stale", "final_stale", "run_valid"]
print(pages["leaky"].summary["browser_version"])
print(pd.DataFrame({n: {**{k: r.summary["page_sockets"][k] for k in SOCKETS},
                        **{k: r.summary[k] for k in RUN}} for n, r in pages.items()}).to_string())

# %%
leaky, correct = (pages[n].summary for n in ("leaky", "correct"))
assert leaky["run_valid"] and correct["run_valid"], (leaky["invalid_reasons"], correct["invalid_reasons"])
assert leaky["page_sockets"]["sockets_per_load_max"] == 2
assert leaky["page_sockets"]["sockets_per_load_mean"] > 1.5
assert leaky["page_sockets"]["left_open"] >= 1  # closed by the browser after its load ended
assert leaky["peak_stale"] >= 1  # the first mount's socket is nobody's current one
assert correct["page_sockets"]["sockets_per_load_max"] == 1
assert correct["page_sockets"]["left_open"] == 0
assert correct["page_sockets"]["max_open"] <= 4  # never more than one per tab

# %% [markdown]
# The leaky page opens two sockets on every load and leaves the first one to the browser,
# which closes it only when the load ends: in the stored run (Chromium 156, 4 tabs, scale
# 0.2, one run each) 10 sockets were left open and up to 8 were open at once for 4 tabs,
# and the server's mean of stale sockets was 4.0 against the correct page's 0.71. The
# correct page opens one per load, closes it itself on `pagehide`, and never held more
# than one per tab; its stale sockets are not zero during the storm (a peak of 3: a
# closed socket the server has not heard close yet) and were 0 at the end. These are the
# numbers the kit reads from Chromium alone, so the same run points at your page as it is:
# serve it (a dev server, or a built folder with `StaticSite`) and give its URL with
# `{ws}` where it takes its socket address, and `target=` your server to play both of
# yours (docs/frontend.md).

# %%
for proc, _ in servers.values():
    proc.terminate()
for proc, _ in servers.values():
    proc.wait(10)
print("stopped:", all(proc.poll() is not None for proc, _ in servers.values()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Conclusion
#
# Pointed at the post-mortem's own handler on its own stack, the kit's tabs find live tabs
# that no push can reach, from the client side (starved tabs) and exactly through the stats
# protocol (`unroutable`), plus stale sockets the keepalive has not reaped yet. The same app
# with `SafeRegistry` settles with none. Point the same run at your staging server. The
# same holds for a front end: two sockets per load and sockets left open show up in the
# leaky page's numbers, read from Chromium without touching the page, and not in the
# correct one's.
