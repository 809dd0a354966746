# %% [markdown] slideshow={"slide_type": "slide"}
# # 00 · Start here: a real server, tabs that reload, and two designs
#
# **What you'll learn:** what the kit measures and how to read its plots; that the reload bug
# is not a thought experiment: a real WebSocket server on this machine shows it.
#
# **What you'll do:** start a real local server from this notebook and poke it with two
# sockets for one user; then let 50 tabs reload against real servers under the
# post-mortem's original design (`before`) and under the fixes it shipped (`postmortem`),
# and plot the connection counts.
#
# **What you need:** `make lab`. Nothing leaves 127.0.0.1. The live cells take about 20 s.
#
# ## The question
#
# When a page reloads, its old WebSocket closes and a new one opens. **Does the server's
# registry of `user -> connection` keep up, and how would we know if it did not?**

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; a fresh matplotlib may print a font-cache notice)
import matplotlib.pyplot as plt
from websockets.asyncio.client import connect

import simkit
from simkit import LocalServer

# %% [markdown]
# ## A real server, by hand
#
# `LocalServer` is a real `websockets` server on 127.0.0.1 that applies a strategy's
# registry policy. `before` is the post-mortem's starting point: `registry[user] = conn` on
# connect and `del registry[user]` on disconnect. We open a socket for `alice`, then a
# second one, as a reload does when the new page connects before the old socket's close
# has arrived.

# %% slideshow={"slide_type": "slide"}
async with LocalServer("before") as server:
    old = await connect(f"{server.url}?user=alice", proxy=None)
    await server.until(lambda s: s.counts()["open_sockets"] == 1)
    new = await connect(f"{server.url}?user=alice", proxy=None)
    await server.until(lambda s: s.counts()["open_sockets"] == 2)
    print("two sockets open:  ", server.registry_snapshot(), server.counts())
    await old.close(1001)  # the old page's close finally arrives
    await server.until(lambda s: s.counts()["open_sockets"] == 1)
    print("after the old close:", server.registry_snapshot(), server.counts())
    await new.close()

# %% [markdown]
# Read the two lines. While both sockets were open the registry routed `alice` to the new
# connection only, and the old one was a duplicate. When the old socket's handler ran its
# cleanup, `del registry["alice"]` removed the entry, which by then pointed at the *new*
# connection: `alice` still has an open socket and the registry is empty. A push to her
# goes nowhere. That is the cleanup race; notebook 02 takes it apart. (On this server, the
# kit's `websockets` one, and on uvicorn's legacy implementation it is a race; on FastAPI
# under uvicorn's default `websockets-sansio`, or `wsproto`, the post-mortem's handler
# strands the new tab every time the old socket is still open: see 02.)

# %% [markdown]
# ## The experiment: 50 tabs reloading against a real server
#
# `simkit.compare(..., runtime="live")` starts a real server (and a fault-injecting proxy
# that adds the scenario's network delay) for each strategy, and plays the `reload-storm`
# scenario with real WebSocket clients: each of 50 tabs reloads about every 20 s, 10 % of
# them after their old socket died silently. Time runs 20x faster than the scenario's
# clock. The simulator sees both ends, so it counts what a production server cannot:
# sockets whose page is gone (`stale`) and live tabs the registry cannot reach
# (`unroutable`).

# %% slideshow={"slide_type": "slide"}
# NBVAL_IGNORE_OUTPUT
# (a live run: counts vary a little from run to run; the assertions below check the story)
# The figure redraws every sample while the runs play (on_sample): watch stale sockets grow.
from simkit.widgets import live_plot

with live_plot(("open_sockets", "stale", "unroutable"), runs=["before", "postmortem"],
               title="reload-storm, live") as plot:
    live = simkit.compare("reload-storm", ["before", "postmortem"], tabs=50, duration=120,
                          runtime="live", on_sample=plot)
table = live.table[["mean_open_sockets", "mean_stale", "mean_unroutable", "final_stale",
                    "delivery_ratio", "invariants_hold"]]
print(table.round(3).T.to_string())

# %%
before, postmortem = live.results["before"].summary, live.results["postmortem"].summary
assert before["mean_stale"] > 5 and postmortem["mean_stale"] > 5  # dead sockets pile up
assert before["mean_unroutable"] > 0  # the blind delete strands live tabs
assert postmortem["mean_unroutable"] == 0  # fresh ids never collide...
assert postmortem["delivery_ratio"] == 0  # ...so no push finds its user either
assert not before["invariants_hold"] and not postmortem["invariants_hold"]

# %% [markdown]
# ## The plot, and how to read it
#
# One panel per metric, one line per strategy, a shared time axis. The dotted line is the
# end of the workload; to its right the run *settles*, long enough for every timeout to
# pass. Whatever is still above zero there is what the design leaves behind for good.

# %%
fig = live.plot()
plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# * `open_sockets` climbs far above the 50 tabs for both designs: neither has a heartbeat,
#   so sockets whose network died silently stay open forever (`stale`).
# * `unroutable` is above zero only for `before`: its `del registry[user]` keeps deleting
#   the new connection's entry. `postmortem` avoids that by giving every page load a fresh
#   id, which is also why its delivery ratio is 0: the server can no longer address a user.
# * `duplicates` counts ids with two open sockets: `before` has many, `postmortem` none
#   (every id is new).
#
# ## Summary
#
# * A real local server shows the reload bug in a few seconds; the kit's metrics see both
#   ends, so they count stale sockets and unreachable tabs directly.
# * Neither the original design nor the fixes as shipped keep the registry true: the next
#   notebooks take each fix apart (01: the bug in numbers, 02: the cleanup race, 03:
#   heartbeats, 04: page lifecycle, 05: identity and tabs, 06: restarts, 07: scale).
