# %% [markdown]
# # Exercise 2 · A heartbeat under a proxy
#
# **What you'll learn:** that a heartbeat does two jobs (finding dead peers and keeping
# idle connections alive through proxies) and that its interval is a trade-off between
# reconnects and ping traffic.
#
# **What you'll do:** choose the heartbeat's `INTERVAL` and `TIMEOUT` so that the
# `proxy-idle` scenario passes its grade.
#
# **What you need:** notebook 04 (page lifecycle) helps. The solution is in
# `ex2_solution.ipynb`; try first.
#
# ## The situation
#
# The post-mortem's dev setup had a rewrite proxy between browser and server that cut any
# socket idle for 30 s ("socket hang up", ECONNRESET); nginx does the same after 60 s by
# default. `proxy-idle` plays 100 tabs that mostly stay open (a reload every two minutes or
# so) behind such a proxy. Pushes are rare, so many sockets sit idle. First, look at what
# the proxy does without a heartbeat and with websockets' default (20 s / 20 s):

# %%
import simkit
from simkit.grade import grade

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
# before the connection is declared dead) so that, on `proxy-idle` with 100 tabs for 300 s:
#
# * every invariant holds after settling;
# * the proxy cuts (almost) nothing: at most 400 connects (the reloads alone need about 340);
# * the ping budget is kept: at most 1400 pings in the whole run (mobile radios and metered
#   links pay for every one);
# * at least 99 % of pushes are delivered.

# %%
# YOUR ANSWER: change these two numbers.
INTERVAL = 60.0
TIMEOUT = 20.0

# %%
mine = SAFE.replace(name="my-heartbeat", liveness=simkit.Liveness("mine", INTERVAL, TIMEOUT))
g = grade(mine, scenarios=["proxy-idle"], tabs=100, duration=300,
          max_connects=400, max_heartbeat_pings=1400, min_delivery_ratio=0.99)
print(g)
print()
print("PASSED: well done." if g.passed else "Not yet: look at the failed rows above.")

# %% [markdown]
# ## Hints
#
# 1. Any traffic resets the proxy's idle timer, and a ping is traffic.
# 2. Pings cost about `tabs * seconds / INTERVAL`. Which intervals are short enough for the
#    proxy and long enough for the budget?
