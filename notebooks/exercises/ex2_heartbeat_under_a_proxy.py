# %% [markdown]
# # Exercise 2 · A heartbeat under a proxy
#
# **What you'll learn:** that a heartbeat does two jobs (finding dead peers and keeping
# idle connections alive through proxies) and that its interval is a trade-off between
# reconnects and ping traffic.
#
# **What you'll do:** choose the heartbeat's `INTERVAL` and `TIMEOUT` so that connections
# survive an idle-cutting proxy and dead peers are still found: `exercise(2, ...)`.
#
# **What you need:** notebook 03 (liveness: the proxy and the silent peer). The solution
# is in `ex2_solution.ipynb`; try first.
#
# ## The situation
#
# A proxy between browser and server cuts any socket idle for 30 s (nginx does this after
# `proxy_read_timeout`, 60 s by default; many load balancers after a minute or so). `proxy-idle` plays 100 tabs that mostly stay open (a reload every two minutes or
# so) behind such a proxy. Pushes are rare, so many sockets sit idle. First, look at what
# the proxy does without a heartbeat and with websockets' default (20 s / 20 s):

# %%
import simkit
from simkit.grading import exercise

SAFE = simkit.STRATEGIES["postmortem-safe"]
for liveness in ["off", "websockets"]:
    r = simkit.run("proxy-idle", SAFE.replace(liveness=liveness), tabs=100, duration=300,
                   progress=False)
    s = r.summary
    print(f"{liveness:>10}: {s['connects']} connects, {s['heartbeat_pings']} pings, "
          f"delivery {s['delivery_ratio']:.3f}, invariants hold: {s['invariants_hold']}")

# %% [markdown]
# ## The task
#
# Pick `INTERVAL` (seconds between pings) and `TIMEOUT` (seconds a ping may go unanswered
# before the connection is declared dead). `exercise(2, (INTERVAL, TIMEOUT))` plays three
# workloads of 50 tabs for 300 s (then 90 s to settle), over five seeds, and requires on
# each seed:
#
# * on every workload: every invariant holds after settling (0 stale, 0 dangling,
#   0 unroutable, 0 disconnected tabs, no more open sockets than connected tabs), and
#   **0 live peers declared dead**: the heartbeat closed no connection whose page was alive
#   and answering (every 1011 close must be a detection of a silent or frozen peer);
# * `proxy-idle` (the 30 s proxy): **the proxy cuts nothing** (as many connects as the same
#   run without the proxy); the ping budget is kept, **at most 150 pings per tab-hour**
#   (mobile radios and metered links pay for every one); at least 99 % of pushes delivered;
# * `phones-die` (no proxy; a third of the phones die silently, leaving half-open sockets):
#   the heartbeat finds at least 5 dead peers, and **the slowest detection takes at most
#   60 s**;
# * `slow-phones` (no proxy; every tab alive, on a slow mobile network whose one-way delay
#   is 50 ms plus up to 600 ms, so a pong can take over a second): nothing beyond the
#   invariants and the live peers.

# %%
# YOUR ANSWER: change these two numbers.
INTERVAL = 60.0
TIMEOUT = 20.0

# %%
g = exercise(2, (INTERVAL, TIMEOUT))
print(g)
print()
print("PASSED: well done." if g.passed else "Not yet: look at the failed rows above.")

# %% [markdown]
# ## Hints
#
# 1. Any traffic resets the proxy's idle timer, and a ping is traffic.
# 2. Pings cost about `3600 / INTERVAL` per tab-hour while a socket is open. Which
#    intervals are short enough for the proxy and long enough for the budget?
# 3. A silent peer is found between `TIMEOUT` and `INTERVAL + TIMEOUT` after it went silent.
# 4. A timeout shorter than the slowest round trip declares live peers dead: how slow is
#    the slowest network in the grade?
