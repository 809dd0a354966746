# %% [markdown] slideshow={"slide_type": "slide"}
# # 04 · The page lifecycle
#
# **What you'll learn:** what each client-side fix of the post-mortem (close on
# `beforeunload`, disconnect when hidden, a connect guard for React StrictMode, a fresh id
# per page load) buys the server's registry, and what it costs.
#
# **What you'll do:** change one part of a strategy at a time with `Strategy.replace(...)`
# and measure it on the scenario that exercises it: `reload-storm` (unload handlers),
# `hidden-tabs` (visibility), `strict-mode` (double mount), `reload-storm` again (identity).
#
# **What you need:** notebooks 01 and 02. Runs in a few seconds.
#
# ## The question
#
# Three of the six shipped fixes live in the page: close the socket on `beforeunload`,
# disconnect on `visibilitychange` hidden, wait for an in-flight connect before opening
# another; a fourth gives each page load a fresh id. **Which page events can a client rely on
# to keep the registry true, and what does each lifecycle fix cost?**

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; output ignored because a fresh matplotlib may print a font-cache notice)
import matplotlib.pyplot as plt
import pandas as pd

import simkit
from simkit.model.page import diagram

pd.set_option("display.width", 120)
TABS, DURATION, SEED = 100, 120, 0
BEFORE = simkit.STRATEGIES["before"]
SAFE = simkit.STRATEGIES["postmortem-safe"]


def run_each(scenario, variants, trace=False):
    """Each named variant on one scenario: a plain `simkit.compare`. Means cover the workload
    only, so they are those of `simkit.run` on its own, whatever the comparison settles."""
    return simkit.compare(scenario, [s.replace(name=name) for name, s in variants.items()],
                          tabs=TABS, duration=DURATION, seed=SEED, trace=trace, progress=False)


# %% [markdown]
# ## The page lifecycle, as the model plays it
#
# Every tab in these runs moves through one transition table (`simkit.model.page`); an
# event the table does not allow is an error, not a silent no-op. Printed from that table:

# %% slideshow={"slide_type": "slide"}
print(diagram())

# %% [markdown]
# ## Experiment 1: `beforeunload`, `pagehide` or no handler
#
# We start from `before` (naive registry, no heartbeat) and change only the unload handler:
# none (the browser closes the socket itself, code 1001, a moment after the page goes),
# `beforeunload` or `pagehide` (the page closes it, code 1000), and `beforeunload` that runs
# on only half of the unloads (`unload_runs=0.5`: iOS Safari does not fire it, a tab discard
# skips it). A last row adds the 20 s/20 s heartbeat instead. The trace tells us which close
# code each socket's cleanup saw (1006: the connection ended without a close frame; 1011:
# the heartbeat gave up on a socket that stopped answering, websockets' keepalive timeout).

# %%
variants = {
    "no handler": BEFORE,
    "beforeunload": BEFORE.replace(unload="beforeunload"),
    "beforeunload, runs 50 %": BEFORE.replace(unload="beforeunload", unload_runs=0.5),
    "pagehide": BEFORE.replace(unload="pagehide"),
    "pagehide + heartbeat": BEFORE.replace(unload="pagehide", liveness="websockets"),
}
runs = run_each("reload-storm", variants, trace=True)
unload = runs.table(columns=["mean_stale", "final_stale", "mean_unroutable"])
for name, r in runs.results.items():
    codes = r.trace.loc[r.trace.event == "server-cleanup", "code"].value_counts()
    for code in [1000, 1001, 1006, 1011]:
        unload.loc[name, f"closed {code}"] = int(codes.get(code, 0))
unload = unload.astype({f"closed {code}": int for code in [1000, 1001, 1006, 1011]})
print(unload.round(2).to_string())

# %%
handlers = unload.loc[["no handler", "beforeunload", "beforeunload, runs 50 %", "pagehide"]]
# A handler changes the close code the server sees...
assert unload.loc["no handler", "closed 1000"] == 0 and unload.loc["pagehide", "closed 1001"] == 0
half = unload.loc["beforeunload, runs 50 %", "closed 1000"]
assert 0 < half < unload.loc["pagehide", "closed 1000"]
# ...but not the stale sockets: those are the reloads whose old socket died silently.
assert handlers["final_stale"].nunique() == 1 and handlers["final_stale"].iloc[0] > 50
assert handlers["mean_stale"].max() < 1.01 * handlers["mean_stale"].min()
# Only the heartbeat finds them (and its reaping runs the naive blind delete: unroutable up).
hb = unload.loc["pagehide + heartbeat"]
assert hb.final_stale == 0 and hb.mean_stale < 0.7 * unload.loc["pagehide", "mean_stale"]
# "no handler" is notebook 01's `before` run: the same mean there and here (36.570)
assert round(unload.loc["no handler", "mean_stale"], 3) == 36.570
assert hb.mean_unroutable > unload.loc["pagehide", "mean_unroutable"]

# %% [markdown]
# With 100 tabs: whatever the handler, **68 stale sockets are left at the end and 36.6 are
# stale on average** (over the workload: the same number as `before` in notebook 01, which is
# this very run; 27.4-36.6 over seeds 0-5). The handler changes only the code the server sees (517 closes with
# 1000 instead of 1001; 280 with 1000 when it runs half of the time). On a reload the
# browser closes the old socket anyway, as the new page commits (0.2 ms after a `pagehide`
# handler would have, measured in Chromium: `simkit.calibration`); what never closes is a socket whose
# network died first, and no page event reaches the server from a dead network. The
# heartbeat finds them (68 cleanups with 1011, 0 stale at the end, 22.2 on average), and
# shows a trap: with the naive registry, each reaped socket's cleanup runs the blind
# `del registry[user]`, so unroutable tabs go *up*, from 45.3 to 49.0 on average
# (notebook 02).
#
# ## Experiment 2: disconnect when hidden
#
# `hidden-tabs`: tabs go to the background about every 30 s and come back about 20 s later.
# `postmortem-safe` keeps its socket while hidden; the variant closes it on
# `visibilitychange` hidden and reconnects on visible (fix 2's second half).

# %%
hidden = run_each(
    "hidden-tabs",
    {"keep": SAFE, "disconnect-when-hidden": SAFE.replace(visibility="disconnect-when-hidden")},
).table(columns=["mean_open_sockets", "mean_stale", "connects", "pushes_lost",
                 "delivery_ratio", "invariants_hold"])
print(hidden.round(3).to_string())

# %%
assert hidden.loc["keep", "delivery_ratio"] > 0.99
assert hidden.loc["disconnect-when-hidden", "delivery_ratio"] < 0.75
assert hidden.loc["disconnect-when-hidden", "connects"] > 3 * hidden.loc["keep", "connects"]
assert hidden["invariants_hold"].all()

# %% [markdown]
# Hidden tabs are still open tabs: with `keep` every push arrives (delivery ratio 1.000, 100
# connects for 100 tabs). Disconnecting when hidden saves 35 sockets on average (62.8 instead
# of 97.8) but **loses a third of the pushes** (195 lost, delivery ratio 0.656) and makes 3.6
# times as many connects (359), each one a handshake and usually an authentication. Once
# every tab is visible again both designs leave a true registry (the invariants hold).
#
# ## Experiment 3: React StrictMode and the connect guard
#
# In development, StrictMode mounts every effect, runs its cleanup and mounts it again: every
# page load opens a socket, closes it and opens another at once. We cross the connect guard
# (none vs `single-flight`: wait up to 3 s for an in-flight connect) with the registry
# (`naive`'s blind delete vs `kick-old-safe`'s compare-and-delete).

# %%
strict = run_each(
    "strict-mode",
    {
        f"{guard} / {registry}": SAFE.replace(guard=guard, registry=registry)
        for guard in ["none", "single-flight"]
        for registry in ["naive", "kick-old-safe"]
    },
).table(columns=["mean_unroutable", "delivery_ratio", "kicked_live_tabs", "connects",
                 "invariants_hold"])
print(strict.round(3).to_string())

# %%
assert strict.loc["none / naive", "mean_unroutable"] > 30
assert strict.loc["none / naive", "delivery_ratio"] < 0.5
assert strict.loc["none / kick-old-safe", "mean_unroutable"] < 0.1
assert strict.loc["none / kick-old-safe", "kicked_live_tabs"] > 0
guarded = strict.loc["single-flight / kick-old-safe"]
assert guarded.mean_unroutable == 0 and guarded.kicked_live_tabs == 0
assert strict.loc["none / kick-old-safe", "connects"] > guarded.connects
assert strict.loc["single-flight / naive", "mean_unroutable"] > 10

# %% [markdown]
# Without a guard, the double mount is the cleanup race (a race on the kit's `websockets`
# server, as here; certain on uvicorn's default implementation, notebook 02) on every page load: with the naive
# registry 65.2 of 100 tabs are unroutable on average and only 27 % of the pushes arrive
# (0.273). The guard alone does not cure it (41.5 unroutable, 0.578 delivered): the first
# mount's socket is still opened and then closed, and its cleanup still deletes whatever
# entry the user has by then. Compare-and-delete alone repairs the registry (0.008
# unroutable on average, 0.966 delivered) at the price of 21 kicked live sockets and 1216
# connects. Both together: 0 unroutable, 0.982 delivered, no kicks, 979 connects. The guard
# saves sockets; only the registry makes the double mount harmless.
#
# ## Experiment 4: what a fresh id per page load costs
#
# The post-mortem's fix 1 gave each page load a random id, so reloads could no longer
# collide. We take `postmortem-safe` and change only the identity, with and without the
# heartbeat.

# %%
fresh_runs = run_each(
    "reload-storm",
    {
        "shared": SAFE,
        "fresh-per-load": SAFE.replace(identity="fresh-per-load"),
        "fresh-per-load, no heartbeat": SAFE.replace(identity="fresh-per-load", liveness="off"),
    },
)
fresh = fresh_runs.table(columns=["mean_registry_entries", "peak_registry_entries",
                                  "final_registry_entries", "mean_stale", "final_stale",
                                  "delivery_ratio", "pushes_lost"])
print(fresh.round(3).to_string())

# %% slideshow={"slide_type": "slide"}
fig, ax = plt.subplots(figsize=(8, 3.2))
for name, r in fresh_runs.results.items():
    ax.plot(r.timeseries.t, r.timeseries.registry_entries, label=f"registry entries: {name}")
ts = fresh_runs.results["shared"].timeseries
ax.plot(ts.t, ts.live_tabs, "k:", label="live tabs")
ax.axvline(DURATION, color="grey", ls=":", lw=1)
ax.set_xlabel("time (s)")
ax.set_ylabel("count")
ax.legend(fontsize="small", loc="lower right")
fig.tight_layout()
plt.show()

# %%
assert (fresh.loc[["fresh-per-load", "fresh-per-load, no heartbeat"], "delivery_ratio"] == 0).all()
assert fresh.loc["shared", "delivery_ratio"] > 0.95
no_hb = fresh.loc["fresh-per-load, no heartbeat"]
assert no_hb.peak_registry_entries > 1.5 * TABS and no_hb.final_stale > 50
assert fresh.loc["fresh-per-load", "final_registry_entries"] == TABS
assert fresh.loc["fresh-per-load", "peak_registry_entries"] < no_hb.peak_registry_entries

# %% [markdown] slideshow={"slide_type": "slide"}
# A fresh id per load costs everything a server wants an id for: **no push reaches anyone**
# (delivery ratio 0, all 562 lost), whatever else the strategy does. And the registry no
# longer shrinks on its own: a reloaded page's old entry has an id nobody will ever claim
# again, so the old entries of silently dead sockets stay. Without a heartbeat the registry
# grows to 169 entries for 100 tabs and keeps 68 stale sockets forever; with the 20 s/20 s
# heartbeat it peaks at 133 and returns to 100 once the heartbeat has reaped the dead.
#
# ## Summary
#
# | fix (post-mortem) | what it buys, measured | what it costs, measured |
# |---|---|---|
# | close on `beforeunload` / `pagehide` | the close code (1000 instead of 1001) | nothing, and nothing for stale sockets: 68 left either way; only a heartbeat finds silently dead ones |
# | disconnect when hidden | 35 fewer sockets on average | a third of the pushes lost (delivery 0.656 vs 1.000), 3.6 x the connects |
# | single-flight connect guard | fewer sockets per double mount: 979 connects instead of 1216, no kicks | does not fix a blind-delete registry: 41.5 tabs still unroutable on average |
# | fresh id per page load | no collisions | no push can find its user (delivery 0); registry grows (169 for 100 tabs) until a heartbeat reaps |
#
# A page can only report what it lives to see. Reloads and hides are visible to the page;
# a dead network, a killed process or a frozen page are not. The server must find those
# itself (a heartbeat) and must clean up only what is its own (compare-and-delete).
