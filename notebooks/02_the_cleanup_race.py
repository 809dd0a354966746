# %% [markdown] slideshow={"slide_type": "slide"}
# # 02 · The cleanup race
#
# **What you'll learn:** why the post-mortem's fix 5, `del registry[user_id]` in the
# disconnect handler, deletes the *new* connection's entry; what the race looks like on a
# timeline; how an exhaustive search finds the shortest event order that triggers it; why
# compare-and-delete fixes it; how network jitter makes it more frequent; and on which
# stacks it is a race at all (on uvicorn's default WebSocket implementation it is certain).
#
# **What you'll do:** trace one run event by event and draw one race; print the
# counterexample the kit finds on its own; compare `kick-old` with `kick-old-safe`; sweep the
# network's jitter; play the same reload on FastAPI under each of uvicorn's three WebSocket
# implementations.
#
# **What you need:** notebook 01 (the vocabulary: stale, unroutable, registry). Runs in a
# few seconds.
#
# ## The question
#
# The post-mortem's server closed the user's old socket when a new one arrived (fix 4) and
# ran `del registry[user_id]` when a socket's handler finished (fix 5). **Why does a live,
# connected tab end up unreachable, and what is the smallest change that prevents it?**

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; output ignored because a fresh matplotlib may print a font-cache notice)
import matplotlib.pyplot as plt
import pandas as pd

import simkit
from simkit.model import KickOld, KickOldSafe
from simkit.model.explore import counterexample

pd.set_option("display.width", 120)
SEED = 0

# The post-mortem's server: kick the old socket, then blind delete. Same client for both.
kick_old = simkit.make_strategy("kick-old", registry="kick-old", identity="shared")
kick_old_safe = simkit.make_strategy("kick-old-safe", registry="kick-old-safe", identity="shared")

# %% [markdown]
# ## Experiment 1: one race, event by event
#
# `simkit.run(..., trace=True)` records every connection event in `result.trace`, a table
# with one row per event (`time`, `conn`, `user`, `event`, and for closes the close `code`
# and the server's `reason`): `connect` (the page opens a socket), `server-open` (the
# handshake reaches the server, which registers it), `server-close` (the server closes a
# socket, e.g. code 4000 "replaced"), `server-cleanup` (the socket's handler finishes: this
# is where `del registry[user]` runs, with the close code the server saw) and `client-close`
# (the page sees its socket close). We play a small `reload-storm` under `kick-old` and pick
# the first race: a kicked socket whose handler finished, with the reloading page's own
# close code (1001, "going away"), *after* its successor had registered.

# %% slideshow={"slide_type": "slide"}
r = simkit.run(
    "reload-storm", kick_old, tabs=20, duration=60, seed=SEED, trace=True, progress=False
)
tr = r.trace
kicked = tr.loc[tr.event == "server-close", "conn"]
late = tr[(tr.event == "server-cleanup") & tr.conn.isin(kicked) & (tr.code == 1001)]
old = late.conn.iloc[0]
kicked_at = tr.loc[(tr.event == "server-close") & (tr.conn == old), "time"].iloc[0]
new = tr.loc[(tr.event == "server-open") & (tr.time == kicked_at), "conn"].iloc[0]
race = tr[tr.conn.isin([old, new])]
print(race.round(3).to_string(index=False))

# %% [markdown]
# Read it top to bottom. The reloading page starts closing its old socket (1001). A close
# takes a round trip (close frame, echo, then the TCP teardown) over a jittery network, and
# meanwhile the new page's handshake reaches the server: the server registers the new socket
# and kicks the old one (4000). Then the old socket's closing completes, its handler
# finishes, and its cleanup runs `del registry[user]`: the entry it deletes is the **new**
# socket's. From then on the tab is connected and live, but no push can find it, until its
# socket ends.
#
# On a timeline, zoomed on the race (`r.plot_timeline`: one lane per connection, one marker
# per event with its close code; the shaded span is the time the live tab was unroutable,
# which lasts far beyond the right edge):

# %% slideshow={"slide_type": "slide"}
cleanups = race[race.event == "server-cleanup"].set_index("conn")["time"]
cleanup_old, cleanup_new = cleanups[old], cleanups[new]
fig = r.plot_timeline(
    [old, new],
    labels=[f"c{old} (old page)", f"c{new} (new page)"],
    shade=(cleanup_old, cleanup_new),
    shade_label=f"c{new}'s tab unroutable until t = {cleanup_new:.1f} s",
    xlim=(race.loc[race.conn == new, "time"].min() - 0.3, cleanup_old + 0.5),  # the race
)
plt.show()

# %% [markdown]
# The shaded span is real: the run's ground truth (`unroutable`, sampled every second) never
# drops to zero inside it, and the window is long, because nothing repairs the registry until
# the tab reloads again.

# %%
window = r.timeseries[(r.timeseries.t > cleanup_old + 1) & (r.timeseries.t < cleanup_new - 1)]
print(f"c{new} unroutable from t={cleanup_old:.2f} s to t={cleanup_new:.2f} s "
      f"({cleanup_new - cleanup_old:.1f} s); min unroutable in between: {window.unroutable.min()}")
assert cleanup_old < cleanup_new and window.unroutable.min() >= 1
assert cleanup_new - cleanup_old > 5

# %% [markdown]
# ## Experiment 2: the counterexample, found automatically
#
# `simkit.model.explore.counterexample` holds a registry policy against the truth on a tiny
# world of one user and up to three connections, and tries every order of the events that
# reorder in production (open, a client starts closing, a handler finishes, a network goes
# silent, the heartbeat reaps) breadth first, so the sequence it prints is a shortest one.

# %%
print(counterexample(KickOld, "unroutable"))
print()
print("kick-old-safe:", counterexample(KickOldSafe, "unroutable"))

# %% [markdown]
# Four steps are enough, and no network is needed at all: the kicked connection's handler
# *always* finishes after its successor registered, because the kick happens at registration.
# The fix is to delete only your own entry (compare-and-delete):
#
# ```python
# def disconnect(self, conn, user, now):
#     if self.map.get(user) == conn:   # was: self.map.pop(user, None)
#         del self.map[user]
# ```
#
# With it the search finds no counterexample within 8 events. Does it hold in a full run?

# %%
assert len(counterexample(KickOld, "unroutable").steps) == 4
assert counterexample(KickOldSafe, "unroutable") is None

TABS, DURATION = 100, 120
fix = simkit.compare(
    "reload-storm", [kick_old, kick_old_safe], tabs=TABS, duration=DURATION, seed=SEED,
    progress=False,
)
table = fix.table(columns=["mean_unroutable", "peak_unroutable", "final_unroutable",
                            "pushes_no_route", "delivery_ratio", "invariants_hold"])
print(table.round(3).to_string())

# %%
assert table.loc["kick-old", "mean_unroutable"] > 5
assert table.loc["kick-old-safe", "peak_unroutable"] == 0
assert table.loc["kick-old-safe", "delivery_ratio"] > table.loc["kick-old", "delivery_ratio"]
assert table["invariants_hold"].tolist() == [False, True]
fig = fix.plot(metrics=("unroutable", "registry_entries"))
plt.show()

# %% [markdown]
# ## Experiment 3: how jitter changes the race's frequency
#
# The race needs the old page's close to reach the server after the new page's handshake.
# With a steady 10 ms network the close (begun as the page unloads, done after one round
# trip more) nearly always wins, since a reload takes at least 50 ms; only the 10 % of
# reloads whose old socket died silently (nothing will ever arrive, so it is always kicked)
# race then. Jitter lets the handshake overtake the close. We sweep the one-way jitter of `reload-storm` from 0 to 800 ms and
# count the kicks and the mean number of unroutable tabs. Under `kick-old-safe` a kick is
# harmless, and each one marks a moment when a connection registered while its user's
# previous socket was still open at the server: exactly the moments when `kick-old`'s blind
# delete strikes. (Under `kick-old` itself fewer kicks happen, because after a blind delete
# the next connection finds no entry left to kick.)

# %%
JITTERS = [0.0, 0.2, 0.4, 0.6, 0.8]
sweep = {}
for jitter in JITTERS:
    sc = simkit.SCENARIOS["reload-storm"].with_(latency=simkit.Latency(0.01, jitter))
    for strategy in (kick_old, kick_old_safe):
        run = simkit.run(sc, strategy, tabs=TABS, duration=DURATION, seed=SEED, trace=True,
                         progress=False)
        sweep[(jitter, strategy.name)] = {
            "kicks": int((run.trace.event == "server-close").sum()),
            "mean_unroutable": run.summary["mean_unroutable"],
            "delivery_ratio": run.summary["delivery_ratio"],
        }
sweep = pd.DataFrame.from_dict(sweep, orient="index")
sweep.index.names = ["jitter", "registry"]
print(sweep.round(3).to_string())

# %%
unroutable = sweep["mean_unroutable"].unstack("registry")
fig, ax = plt.subplots(figsize=(6, 3.2))
for name in unroutable.columns:
    ax.plot(unroutable.index, unroutable[name], "o-", label=name)
ax.set_xlabel("one-way latency jitter (s)")
ax.set_ylabel("mean unroutable tabs")
ax.set_title(f"reload-storm, {TABS} tabs: the race vs jitter")
ax.legend()
fig.tight_layout()
plt.show()

# %%
ko = sweep.xs("kick-old", level="registry")
kos = sweep.xs("kick-old-safe", level="registry")
assert kos["kicks"].is_monotonic_increasing and ko["mean_unroutable"].is_monotonic_increasing
assert kos.loc[0.8, "kicks"] > 3 * kos.loc[0.0, "kicks"]
assert ko.loc[0.8, "mean_unroutable"] > 2 * ko.loc[0.0, "mean_unroutable"]
assert (kos["mean_unroutable"] == 0).all()

# %% [markdown]
# ## Experiment 4: the same reload on the post-mortem's own stack
#
# Everything above ran the kit's `websockets` server, where the strand is a race: it needs the
# old handler to finish after the new socket registered, and jitter decides how often that
# happens. The post-mortem's backend was FastAPI on uvicorn, and uvicorn has three WebSocket
# implementations that treat the post-mortem's handler (`if user_id in conns: try: await
# old.close() finally: del conns[user_id]`, then `conns[user_id] = websocket`, and a blind
# `del` on disconnect) differently. `python -m simkit calibrate --stack fastapi` measured each,
# 20 times per reload shape, on real uvicorn servers through the fault proxy; the kit ships
# the result. "strand" is the new tab connected and unroutable, "self-kill" the new handler
# closing its *own* socket (its `finally: del` raised `KeyError`), "registered" the right
# ending.

# %%
import json
from dataclasses import replace
from importlib.resources import files

calibration = json.loads(files("simkit").joinpath("calibration_fastapi.json").read_text())
IMPLEMENTATIONS = ["websockets-sansio", "websockets", "wsproto"]
REPS = calibration["setup"]["reps"]
measured = pd.DataFrame(
    {
        impl: {
            shape: ", ".join(f"{k} {n}/{REPS}" for k, n in case["outcomes"].items() if n)
            for shape, case in calibration["implementations"][impl]["reload"].items()
        }
        for impl in IMPLEMENTATIONS
    }
)
print(f"measured on uvicorn {calibration['versions']['uvicorn']}, "
      f"FastAPI {calibration['versions']['fastapi']}:")
print(measured.to_string())

# %%
reload = {impl: calibration["implementations"][impl]["reload"] for impl in IMPLEMENTATIONS}
for impl in ["websockets-sansio", "wsproto"]:  # certain: every overlap strands
    assert reload[impl]["replace-live"]["outcomes"]["strand"] == REPS
    assert reload[impl]["half-open"]["outcomes"]["strand"] == REPS
assert reload["websockets"]["close-in-flight"]["outcomes"]["self-kill"] == REPS

# %% [markdown]
# Now the same `reload-storm` (100 tabs, 120 s, seed 0) played in virtual time under each
# implementation's calibrated transport profile (`simkit.run(..., stack="fastapi", ws=...)`),
# side by side with the kit's `websockets` server. The server is the post-mortem's handler
# (preset `seed`); to let reloads collide we give its client the user's own id (as before the
# post-mortem's fresh-id fix, or as any app with a login does), and add `postmortem-safe` on
# each stack as the control.

# %%
seed = simkit.STRATEGIES["seed"]
handler = simkit.make_strategy(
    "seed, user's own id",
    client=replace(seed.client, identity="shared"),
    registry="close-delete-register",
    liveness=seed.liveness,
)
rows = {}
for impl in [*IMPLEMENTATIONS, None]:
    stack = {"stack": "fastapi", "ws": impl} if impl else {}
    where = f"fastapi + {impl}" if impl else "kit's websockets server"
    for strategy in (handler, "postmortem-safe"):
        run = simkit.run("reload-storm", strategy, tabs=TABS, duration=DURATION, seed=SEED,
                         progress=False, **stack)
        rows[(where, run.strategy)] = run.summary
stacks = pd.DataFrame.from_dict(rows, orient="index")[
    ["mean_stale", "mean_unroutable", "final_unroutable", "kicked_live_tabs", "delivery_ratio",
     "invariants_hold"]
]
stacks.index.names = ["server", "strategy"]
print(stacks.round(3).to_string())

# %%
broken = stacks.xs("seed, user's own id", level="strategy")
control = stacks.xs("postmortem-safe", level="strategy")
assert (broken["final_unroutable"] > 0).all() and not broken["invariants_hold"].any()
assert control["invariants_hold"].all() and (control["mean_unroutable"] == 0).all()
# sansio and wsproto behave alike; only legacy's handler kills its own new sockets
assert broken.loc["fastapi + websockets-sansio"].equals(broken.loc["fastapi + wsproto"])
assert broken.loc["fastapi + websockets", "kicked_live_tabs"] > 0
assert broken.loc["fastapi + websockets-sansio", "kicked_live_tabs"] == 0

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What the numbers say
#
# * In the traced run, c3's handler finished 0.30 s after c7 had registered; its blind
#   delete left c7's tab connected but unroutable for 49.7 s, until c7 itself ended.
# * The search needs only 4 events to break `kick-old` (open, open, kick, the kicked
#   handler's cleanup) and finds nothing against `kick-old-safe`.
# * Over 120 s of `reload-storm` with 100 tabs (jitter 400 ms), `kick-old` has 51.3
#   unroutable tabs on average over the workload and 76 at the end, 300 pushes find no route and the delivery
#   ratio is 0.447; `kick-old-safe` never has a single unroutable tab (delivery ratio 0.966)
#   and its invariants hold.
# * Jitter drives the race: from 0 to 800 ms of jitter, the moments when a connection
#   registers while its user's previous socket is still open (the kicks under
#   `kick-old-safe`) grow from 68 to 509, and `kick-old`'s mean unroutable tabs from 8.3 to
#   60.0. The floor at zero jitter is the silently dead sockets, which are kicked (and so
#   race) every time. Compare-and-delete stays at 0 unroutable for every jitter; jitter still
#   costs it some pushes in flight during reconnects (delivery ratio 1.000 at no jitter,
#   0.952 at 800 ms).
# * On the post-mortem's own stack the outcome depends on the WebSocket implementation, as
#   measured 20 times per shape: on `websockets-sansio` (uvicorn's default since 0.50) and
#   `wsproto`, `await old.close()` returns at once and the old handler's blind delete always
#   comes after the new registration, so whenever the old socket is still there (live or
#   half-open) the strand is **certain**, 20 of 20; only a close already in flight saves it.
#   On uvicorn's legacy `websockets` implementation (and on the kit's `websockets` server)
#   it is a race, and legacy adds a self-kill (the new socket closed by its own handler, 20
#   of 20 when the old close is in flight). In virtual time on `reload-storm` the post-mortem's
#   handler with the user's id leaves 16.7 tabs unroutable on average on sansio and wsproto
#   (20 at the end, delivery 0.795), 30.3 on legacy (127 live tabs killed by their own
#   handler; its `close()` waits four one-way trips, as measured) and 49.2 on the kit's server, whose slower cleanup (three one-way trips, not
#   one) makes overlaps more frequent. Fewer overlaps on sansio, but each one strands.
#   `postmortem-safe` holds its invariants on all four.
#
# ## Summary
#
# * A disconnect handler knows its user and its connection. Deleting by user alone
#   (`del registry[user_id]`) removes whatever is there now, which after a kick or a slow
#   close is the successor's entry.
# * The race is not rare bad luck: under kick-old every kick triggers it, and jitter on real
#   networks makes kicks common. On FastAPI under uvicorn's default implementation (and
#   `wsproto`) it is not even a race: every reload that finds the old socket still
#   registered strands the new tab.
# * Compare-and-delete (`if registry.get(user) == conn: del registry[user]`) closes it: 0
#   unroutable tabs at every jitter, and no counterexample in an exhaustive search.
# * Next: notebook 04 asks what the page-lifecycle fixes on the client buy.
