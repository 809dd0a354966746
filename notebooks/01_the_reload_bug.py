# %% [markdown] slideshow={"slide_type": "slide"}
# # 01 · The reload bug
#
# **What you'll learn:** what the post-mortem's reload bug looks like when you can see both
# ends of every connection at once; how to read a `simkit.compare(...)` plot; which of the
# fixes that shipped actually cured it.
#
# **What you'll do:** play the `reload-storm` scenario under three strategies (`before`,
# `postmortem`, `postmortem-safe`), read the numbers and the plot, then check the story on
# `strict-mode` and `multi-tab`.
#
# **What you need:** the kit installed (`make lab` sets it up). Every run here is virtual and
# seeded, so the numbers below are the same on every machine; the notebook runs in seconds.
#
# ## The question
#
# A Next.js + FastAPI app saw, on every reload, several WebSocket connections with the same
# user id, orphaned connections, and pushes that never arrived. The team shipped six fixes.
# **When users reload, does the server's `user -> connection` registry still tell the truth:
# before the post-mortem, with the fixes as shipped, and with the same intent done right?**

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; output ignored because a fresh matplotlib may print a font-cache notice)
import matplotlib.pyplot as plt
import pandas as pd

import simkit

pd.set_option("display.width", 120)
TABS, DURATION, SEED = 100, 120, 0

# %% [markdown]
# ## The experiment
#
# `reload-storm`: every tab reloads about every 20 s over a jittery network (10-410 ms one
# way), and 10 % of the reloads happen after the old socket died silently (a phone that lost
# its network, then pulled to refresh). Pushes to people arrive at 0.05 per tab per second.
# We play the *same* workload (same seed) under the three strategies:
#
# | strategy | what it is |
# |---|---|
# | `before` | naive registry (`registry[user] = conn`, `del registry[user]`), no heartbeat |
# | `postmortem` | exactly the fixes shipped: fresh id per page load, close on `beforeunload`, disconnect when hidden, connect guard, kick the old socket, blind delete |
# | `postmortem-safe` | the same intent done right: the user's own id, `pagehide`, compare-and-delete, 20 s/20 s heartbeat |

# %% slideshow={"slide_type": "slide"}
c = simkit.compare(
    "reload-storm",
    ["before", "postmortem", "postmortem-safe"],
    tabs=TABS,
    duration=DURATION,
    seed=SEED,
    progress=False,
)
COLUMNS = [
    "mean_live_tabs",
    "mean_open_sockets",
    "mean_stale",
    "peak_duplicates",
    "mean_unroutable",
    "final_stale",
    "final_unroutable",
    "delivery_ratio",
    "pushes_lost",
    "invariants_hold",
]
table = pd.DataFrame.from_dict({n: r.summary for n, r in c.results.items()}, orient="index")
table = table[COLUMNS]
print(table.round(3).T.to_string())

# %% [markdown]
# ## The plot, and how to read it
#
# `c.plot()` draws one panel per metric and one line per strategy on a shared time axis.
# The dotted grey line is the end of the workload: after it nobody reloads any more and the
# run *settles* (long enough for every heartbeat, close timeout and backoff). Whatever is
# still above zero on the right of that line is what the strategy leaves behind for good.
#
# * `open_sockets`: server-side sockets; with 100 tabs a truthful server holds about 100.
# * `stale`: sockets whose page is gone or that are no longer their tab's current socket.
# * `unroutable`: connected, live tabs the registry does not route to (a push cannot
#   reach them).
# * `duplicates`: user ids with more than one open socket, where the design means one.

# %% slideshow={"slide_type": "slide"}
fig = c.plot()
plt.show()

# %% [markdown]
# One strategy at a time: `Result.plot()` puts the server's view (`open_sockets`) next to the
# truth (`live_tabs`) for `before`. The gap between the two lines is the stale sockets.

# %%
fig = c.results["before"].plot()
plt.show()

# %% [markdown]
# ## The three symptoms, checked
#
# Each claim of the post-mortem becomes an assertion on the numbers just measured: if the
# model changes so that a claim no longer holds, this notebook fails in CI.

# %%
before, shipped, safe = (table.loc[name] for name in ["before", "postmortem", "postmortem-safe"])

# 1. Duplicate connections for one user, and sockets that outlive their page.
assert before.peak_duplicates > 0
assert before.mean_open_sockets > 1.3 * before.mean_live_tabs
assert before.mean_stale > 4 * safe.mean_stale
assert before.final_stale > 0 and safe.final_stale == 0
# 2. The blind delete strands live tabs; the safe registry never does.
assert before.mean_unroutable > 1 and before.final_unroutable > 0
assert safe.mean_unroutable == 0 and safe.final_unroutable == 0
# 3. The shipped fixes trade those symptoms for a worse one: no push finds its user.
assert shipped.delivery_ratio == 0
assert shipped.mean_stale > 0.9 * before.mean_stale  # ...and stale sockets are still there
assert safe.delivery_ratio > 0.95 and safe.delivery_ratio > before.delivery_ratio
assert table["invariants_hold"].tolist() == [False, False, True]
print(
    f"stale: before {before.mean_stale:.1f}, postmortem {shipped.mean_stale:.1f}, "
    f"postmortem-safe {safe.mean_stale:.1f} (mean sockets)\n"
    f"delivery: before {before.delivery_ratio:.3f}, postmortem {shipped.delivery_ratio:.3f}, "
    f"postmortem-safe {safe.delivery_ratio:.3f}"
)
# The same run gives the same number in every notebook: means cover the workload only, so
# notebook 04's comparison (other strategies, another settle time) finds the same value.
assert round(before.mean_stale, 3) == 36.570

# %% [markdown]
# Seed 0 is one draw of the workload. The same comparison over six seeds (`simkit.sweep`, run
# here one after another) says how far each figure moves with the seed:

# %%
spread = simkit.sweep(
    "reload-storm",
    ["before", "postmortem", "postmortem-safe"],
    seeds=6,
    tabs=TABS,
    duration=DURATION,
    scheduler="synchronous",
)
SPREAD = ["mean_stale", "mean_unroutable", "final_stale", "delivery_ratio"]
by_strategy = spread.runs.groupby("strategy")[SPREAD].agg(["min", "max"])
print(by_strategy.round(3).to_string())
seed0 = spread.runs[spread.runs.seed == SEED].set_index("strategy")
assert (seed0["mean_stale"] == table["mean_stale"]).all()  # the sweep's seed 0 is this run
assert by_strategy.loc["before", ("mean_stale", "min")] > 3 * by_strategy.loc[
    "postmortem-safe", ("mean_stale", "max")
]
assert by_strategy.loc["postmortem", ("delivery_ratio", "max")] == 0
assert by_strategy.loc["postmortem-safe", ("delivery_ratio", "min")] > by_strategy.loc[
    "before", ("delivery_ratio", "max")
]

# %% [markdown]
# ## What the numbers say
#
# With 100 tabs (seed 0, 120 s of workload; means are over the workload, finals after
# settling; the range in brackets is seeds 0-5):
#
# * **`before`** holds 131.8 sockets on average for 96.4 live tabs: 36.6 of them are stale
#   on average (27.4-36.6 over six seeds) and 68 are still open when everything has settled,
#   because nothing ever notices a socket that died silently. Up to 54 user ids have two
#   sockets at once. Its blind `del registry[user]` strands 45.4 live tabs on average (61 at
#   the end): about half of all pushes are lost (285 of 562, delivery ratio 0.493;
#   0.447-0.496).
# * **`postmortem`** ends the collisions (a fresh id per page load never collides) but the
#   server can no longer find anyone: **delivery ratio 0.000** on every seed, all 562 pushes
#   lost. And the stale sockets are exactly where they were (36.5 on average, 68 at the end):
#   closing on `beforeunload` does nothing for a socket whose network is already gone.
# * **`postmortem-safe`** keeps the user's id, deletes only its own entry and runs a
#   heartbeat: 8.3 stale sockets on average (7.0-8.3; each reaped within 40 s), never an
#   unroutable tab, delivery ratio 0.966 (0.966-0.985), and every invariant holds after
#   settling.
#
# ## Not just reloads
#
# The same three designs on two other workloads: `strict-mode` (React StrictMode mounts
# every effect twice in development, so each load connects, cleans up and connects again) and
# `multi-tab` (people with two or three tabs of the app open).

# %%
rows = {}
for scenario in ["strict-mode", "multi-tab"]:
    other = simkit.compare(
        scenario,
        ["before", "postmortem", "postmortem-safe"],
        tabs=TABS,
        duration=DURATION,
        seed=SEED,
        progress=False,
    )
    for name, r in other.results.items():
        rows[(scenario, name)] = r.summary
more = pd.DataFrame.from_dict(rows, orient="index")[
    ["mean_stale", "mean_unroutable", "delivery_ratio", "kicked_live_tabs", "invariants_hold"]
]
more.index.names = ["scenario", "strategy"]
print(more.round(3).to_string())

# %%
assert more.loc[("strict-mode", "before"), "mean_unroutable"] > 10
assert more.loc[("strict-mode", "postmortem-safe"), "mean_unroutable"] == 0
assert more.loc[("strict-mode", "postmortem"), "delivery_ratio"] == 0
assert more.loc[("strict-mode", "postmortem"), "mean_unroutable"] > 10
assert more.loc[("multi-tab", "postmortem-safe"), "kicked_live_tabs"] > 1000
assert not more.loc[("multi-tab", "postmortem-safe"), "invariants_hold"]

# %% [markdown]
# Under StrictMode the double mount makes `before`'s blind delete worse still: the first
# mount's cleanup arrives after the second mount registered, so on average 67.4 of 100 live
# tabs are unroutable and only 28 % of the pushes arrive (delivery ratio 0.282). The shipped
# `postmortem` fares no better on the registry (44.6 unroutable on average): both mounts of
# one page load claim the same fresh id, so kick-old's blind delete strikes there too, connect
# guard or not. `postmortem-safe` (connect guard + compare-and-delete) has none. But on
# `multi-tab`, `postmortem-safe` is *not* safe: its kick-old registry lets two tabs of one
# person kick each other, 10109 times in two minutes, and the invariants fail. That is
# notebook 05's story.
#
# ## On the post-mortem's own stack: FastAPI on uvicorn
#
# `postmortem` is the kit's model of the shipped fixes on the kit's `websockets` server. The
# post-mortem ran FastAPI on uvicorn, and the kit runs that too: preset `seed` is the
# post-mortem's handler as written (close the old socket, `del conns[user_id]`, register; a
# blind `del` on disconnect) with the post-mortem's client (fresh id per load, close on
# `beforeunload`, disconnect when hidden, 3 s connect guard, close-then-wait-100 ms), served
# the way the post-mortem's code asks (`ws_ping_interval=None`: no keepalive);
# `seed-uvicorn-defaults` is the same app started with plain `uvicorn app:app`, whose
# keepalive pings every 20 s. In virtual time each of uvicorn's three WebSocket
# implementations is a transport profile calibrated against real uvicorn servers
# (`simkit.run(..., stack="fastapi", ws=...)`; notebook 02 shows the measurements).

# %%
IMPLEMENTATIONS = ["websockets-sansio", "websockets", "wsproto"]
rows = {}
for impl in IMPLEMENTATIONS:
    on_stack = simkit.compare(
        "reload-storm",
        ["seed", "seed-uvicorn-defaults"],
        tabs=TABS,
        duration=DURATION,
        seed=SEED,
        progress=False,
        stack="fastapi",
        ws=impl,
    )
    for name, r in on_stack.results.items():
        rows[(impl, name)] = r.summary
fastapi = pd.DataFrame.from_dict(rows, orient="index")[
    ["mean_open_sockets", "mean_stale", "final_stale", "mean_unroutable", "pushes_sent",
     "delivery_ratio", "invariants_hold"]
]
fastapi.index.names = ["ws", "strategy"]
print(fastapi.round(3).to_string())

# %%
for impl in IMPLEMENTATIONS:
    as_written = fastapi.loc[(impl, "seed")]
    deployed = fastapi.loc[(impl, "seed-uvicorn-defaults")]
    # the fresh id per load: nothing collides, and no push finds anyone, on every implementation
    assert as_written.delivery_ratio == 0 and deployed.delivery_ratio == 0
    assert as_written.mean_unroutable == 0
    # no keepalive: silently dead sockets stay for good; uvicorn's default keepalive reaps them
    assert as_written.final_stale > 0 and deployed.final_stale == 0
    assert deployed.mean_stale < as_written.mean_stale
assert fastapi.loc[("websockets-sansio", "seed")].equals(fastapi.loc[("wsproto", "seed")])

# %% [markdown] slideshow={"slide_type": "slide"}
# On the post-mortem's own stack the verdict is the same as in the model, and sharper: with a
# fresh id per page load **no push reaches anyone on any implementation** (delivery ratio
# 0.000), and with the keepalive off, as the post-mortem's code runs it, 68 sockets of
# silently gone pages are still open after settling. What the stack changes is how many stale
# sockets a reload leaves meanwhile: 34.9 on average on `websockets-sansio` (uvicorn's default)
# and `wsproto`, whose cleanup runs one one-way trip after the page's close, against 36.5 on
# the legacy `websockets` implementation, whose cleanup takes three (as the kit's own server
# does). Deployed with uvicorn's default keepalive (`seed-uvicorn-defaults`), the dead
# sockets are reaped within 40 s: 16.3 stale on average on sansio and wsproto (22.0 on
# legacy) and none at the end. So the kit's `before` and `postmortem`, which run with no
# heartbeat at all, overstate the stale sockets of an app started with plain `uvicorn
# app:app`, but not of the post-mortem's code as written.
#
# ## Summary
#
# * Reloads make the registry lie in three measurable ways: duplicate sockets per user,
#   stale sockets that outlive their page, and live tabs the registry cannot route to.
# * The shipped fixes removed the collisions by removing identity: no push reaches anyone
#   (delivery ratio 0), and the stale sockets stayed.
# * Keeping the user's id, compare-and-delete and a heartbeat fix all three on
#   `reload-storm` (8.3 stale on average instead of 36.6, nothing left behind, 96.6 % of
#   pushes delivered instead of 49.3 %), on every seed tried.
# * On the post-mortem's own stack (FastAPI on uvicorn, any of its three WebSocket
#   implementations) the post-mortem's code as written delivers nothing either; uvicorn's
#   default keepalive would have reaped its dead sockets, the code as written turns it off.
# * Read a comparison plot from the right: after the dotted line, what is not zero is a leak.
# * Next: notebook 02 takes the cleanup race apart; 04 the page lifecycle; 05 multi-tab.
