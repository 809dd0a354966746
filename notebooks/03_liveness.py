# %% [markdown]
# # 03 · Liveness: finding the sockets nobody closed
#
# **What you'll learn:** why only a heartbeat finds half-open connections; what a faster
# heartbeat costs; why a proxy that cuts idle sockets needs a ping interval shorter than its
# timeout.
#
# **What you'll do:** blackhole a real connection in the fault proxy and time the server's
# keepalive; sweep heartbeat settings on `flaky-network` (virtual time) and plot detection
# delay against ping traffic; put a 30 s idle-timeout proxy in front of several ping
# intervals.
#
# **What you need:** `make lab`. The live cell takes a few seconds; the rest is virtual.
#
# ## The question
#
# A phone loses its network without a word: no close frame, no FIN. **How long does the
# server keep routing to that dead socket, and what does it cost to find out sooner?**

# %%
# NBVAL_IGNORE_OUTPUT
# (imports only; a fresh matplotlib may print a font-cache notice)
import asyncio

import matplotlib.pyplot as plt
import pandas as pd
from websockets.asyncio.client import connect

import simkit
from simkit import FaultProxy, Liveness, LocalServer

pd.set_option("display.width", 120)

# %% [markdown]
# ## 1. A half-open socket, for real
#
# A `LocalServer` running `postmortem-safe` (websockets' keepalive: ping every 20 s, 20 s
# timeout) at 20x speed, so 1 s + 1 s here, and a close timeout of 0.5 s. A client connects
# through the `FaultProxy`; then the proxy blackholes the link (Toxiproxy's `timeout`
# toxic): bytes vanish both ways and nobody is told.

# %%
# NBVAL_IGNORE_OUTPUT
# (a live measurement: the exact time varies by a few milliseconds)
SCALE = 0.05
async with LocalServer("postmortem-safe", scale=SCALE) as server:
    async with FaultProxy(server.port) as proxy:
        ws = await connect(f"ws://127.0.0.1:{proxy.port}/ws?user=phone", proxy=None,
                           ping_interval=None)
        await server.until(lambda s: s.counts()["open_sockets"] == 1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        proxy.connection(ws.transport.get_extra_info("sockname")[1]).blackhole()
        await server.until(lambda s: s.counts()["open_sockets"] == 0, timeout=10)
        reaped_after = loop.time() - start
        ws.transport.abort()
print(f"reaped after {reaped_after:.2f} s = {reaped_after / SCALE:.0f} scenario seconds")

# %%
assert 1.0 <= reaped_after <= 2.0 + 0.5 + 0.5  # interval+timeout (+ close timeout, slack)

# %% [markdown]
# The socket stayed registered for between one timeout and one interval plus one timeout
# (20 to 40 scenario seconds), and then websockets still waited for its close timeout before
# the handler's cleanup ran. Without a heartbeat it would stay forever: the kernel happily
# buffers whatever the server sends.
#
# ## 2. The trade-off: detection delay against ping traffic
#
# Same scenario, many heartbeat rules: `flaky-network` (mobile tabs whose network drops
# silently, then returns on a new path) with the `multi-heartbeat` strategy, varying only
# the liveness rule. We measure the mean time from the silent drop to the server's verdict,
# and the pings sent per connection-minute.

# %%
base = simkit.STRATEGIES["multi-heartbeat"]
rules = [Liveness(f"{i:g}s/{t:g}s", float(i), float(t)) for i, t in
         [(5, 5), (10, 10), (15, 30), (20, 20), (25, 20), (30, 60), (60, 60)]]
rows = {}
for rule in rules:
    s = simkit.run("flaky-network", base.replace(name=rule.name, liveness=rule), tabs=200,
                   duration=600, seed=0, progress=False).summary
    minutes = s["mean_open_sockets"] * (s["duration"] + s["settle"]) / 60
    rows[rule.name] = {"interval": rule.interval, "timeout": rule.timeout,
                       "detection_delay_mean": s["detection_delay_mean"],
                       "pings_per_conn_minute": s["heartbeat_pings"] / minutes,
                       "mean_stale": s["mean_stale"]}
tradeoff = pd.DataFrame.from_dict(rows, orient="index")
print(tradeoff.round(2).to_string())

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(tradeoff["pings_per_conn_minute"], tradeoff["detection_delay_mean"], "o-")
for name, row in tradeoff.iterrows():
    ax.annotate(name, (row["pings_per_conn_minute"], row["detection_delay_mean"]),
                fontsize="small", xytext=(4, 4), textcoords="offset points")
ax.set_xlabel("pings per connection-minute")
ax.set_ylabel("mean detection delay (s)")
ax.set_title("flaky-network: finding dead peers costs traffic")
fig.tight_layout()
plt.show()

# %%
equal = tradeoff[tradeoff["interval"] == tradeoff["timeout"]].sort_values("interval")
assert equal["detection_delay_mean"].is_monotonic_increasing
assert equal["pings_per_conn_minute"].is_monotonic_decreasing
for _, row in tradeoff.iterrows():  # every verdict lands where the rule says it must
    assert row["timeout"] <= row["detection_delay_mean"] <= row["interval"] + row["timeout"]

# %% [markdown]
# With interval = timeout the curve is a clean trade: each halving of the interval halves
# the delay and doubles the pings. A long timeout (`15s/30s`, SignalR's shape; `30s/60s`,
# Phoenix's) buys tolerance of slow networks at the price of detection time; stale sockets
# follow the detection delay.
#
# ## 3. A proxy that cuts idle sockets
#
# The post-mortem's dev proxy dropped sockets that were quiet for 30 s ("socket hang up").
# Heartbeats are traffic too, so a ping interval under the proxy's idle timeout keeps
# connections alive; one above it lets the proxy cut every quiet socket. `proxy-idle` with
# pushes switched off, so only pings can keep a socket busy:

# %%
quiet = simkit.SCENARIOS["proxy-idle"].with_(push_rate=0.0)
churn = {}
for interval in (10, 20, 25, 45, 60):
    rule = Liveness(f"ping {interval}s", float(interval), float(interval))
    s = simkit.run(quiet, base.replace(name=rule.name, liveness=rule), tabs=200,
                   duration=600, seed=0, progress=False).summary
    churn[interval] = {"connects_per_tab": s["connects"] / s["tabs"],
                       "invariants_hold": s["invariants_hold"]}
churn = pd.DataFrame.from_dict(churn, orient="index").rename_axis("ping interval (s)")
print(churn.round(2).to_string())

# %%
assert churn.loc[[10, 20, 25], "connects_per_tab"].max() < 1.5 * churn.loc[10, "connects_per_tab"]
assert churn.loc[45, "connects_per_tab"] > 3 * churn.loc[25, "connects_per_tab"]
assert churn.loc[[10, 20, 25], "invariants_hold"].all()
assert not churn.loc[[45, 60], "invariants_hold"].any()

# %% [markdown]
# Under the 30 s idle timeout, pinging every 10-25 s keeps reconnects to the scenario's own
# reloads; at 45 s or 60 s every socket is cut once it has been quiet for 30 s and the tabs
# reconnect over and over, about four times as often. That churn never settles: at the end
# of the run some tabs are always between a cut and their reconnect, so even the settled
# invariants fail (`invariants_hold` is False), and every gap loses pushes.
#
# ## 4. Alive to TCP, dead to the app
#
# A page the browser has frozen, or one waiting in the back/forward cache, keeps its socket
# open and the browser keeps answering protocol pings, while the page runs no code: every
# push to it is silently lost. Only an application-level heartbeat, one the page itself must
# answer, finds it. `background-tabs` freezes tabs and parks them in the cache; we run the
# `resume` design (missed pushes are buffered and replayed on reconnect) under the protocol
# rule, the app rule, and both.

# %%
resume = simkit.STRATEGIES["resume"]
kinds = {}
for rule in ("websockets", "app", "websockets+app"):
    s = simkit.run("background-tabs", resume.replace(name=rule, liveness=rule), tabs=200,
                   duration=600, seed=0, progress=False).summary
    kinds[rule] = {k: s[k] for k in ("pushes_lost_frozen", "detections_protocol",
                                     "detections_app", "detection_delay_mean_app",
                                     "pushes_replayed", "delivery_ratio", "heartbeat_pings")}
kinds = pd.DataFrame.from_dict(kinds, orient="index")
print(kinds.round(3).to_string())

# %%
fig, ax = plt.subplots(figsize=(6, 3))
kinds["pushes_lost_frozen"].plot.barh(ax=ax)
ax.set_xlabel("pushes silently lost to frozen or cached pages")
fig.tight_layout()
plt.show()

# %%
assert kinds.loc["websockets", "detections_app"] == kinds.loc["websockets", "detections_protocol"] == 0
assert kinds.loc["app", "pushes_lost_frozen"] < 0.5 * kinds.loc["websockets", "pushes_lost_frozen"]
assert kinds.loc["app", "delivery_ratio"] > kinds.loc["websockets", "delivery_ratio"] + 0.1
assert 20 <= kinds.loc["app", "detection_delay_mean_app"] <= 40
assert kinds.loc["websockets+app", "heartbeat_pings"] > kinds.loc["app", "heartbeat_pings"]

# %% [markdown]
# Protocol pings found none of the frozen or cached pages (zero detections) and 1,629
# pushes vanished into them. The app-level heartbeat declared each one dead about 30 s after
# it stopped running (20-40 s, as its 20 s/20 s rule says); from then on the server knew,
# so `resume` buffered the pushes and replayed 595 of them when the page came back: silent
# losses fell to 673 (the detection window) and the delivery ratio rose from 0.60 to 0.75.
# Running both heartbeats finds nothing more here and doubles the ping traffic; the protocol
# ping still earns its place on paths where only it is answered cheaply (a dead network is
# found by both).
#
# ## Summary
#
# * Only a heartbeat finds half-open sockets; websockets' 20 s/20 s finds them 20-40 s after
#   they die, then spends its close timeout before the handler's cleanup runs.
# * Detection delay and ping traffic trade one for one: pick the delay your pushes can
#   tolerate, then pay for it.
# * Any idle timeout on the path (dev proxies, load balancers, nginx's 60 s default) must be
#   longer than the ping interval.
# * A frozen or cached page answers protocol pings and loses every push: only a heartbeat
#   the page itself answers finds it, and only then can the server buffer or fall back.
