# %% [markdown] slideshow={"slide_type": "slide"}
# # 10 · Many nodes
#
# **What you'll learn:** what happens to the reload bug when the service runs on several
# nodes behind a load balancer; why sticky sessions hide it and a node crash reveals it;
# why a registry shared in Redis needs a TTL on its entries (presence) and not only a
# careful delete; how the choices of Socket.IO, Phoenix and Centrifugo compare on the same
# workload.
#
# **What you'll do:** run the multi-node scenarios in virtual time on 3 nodes, compare the
# cross-node policies, switch the balancer to sticky, crash a node.
#
# **What you need:** notebooks 01 and 02 (stale, unroutable, compare-and-delete). Runs in a
# few seconds.
#
# ## The question
#
# A team moves its WebSocket service from one process to three behind a load balancer.
# **Which registry design keeps every connected tab reachable, and what do the
# nodes have to share for it?**

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; output ignored because a fresh matplotlib may print a font-cache notice)
import matplotlib.pyplot as plt
import pandas as pd

import simkit
from simkit.model.cluster import counterexample

SIZE = {"tabs": 100, "duration": 300, "seed": 0}
COLUMNS = [
    "delivery_ratio",
    "mean_stale",
    "final_unroutable",
    "cross_node_kicks",
    "invariants_hold",
]

# %% [markdown]
# ## 1. The reload bug across nodes
#
# `multi-node-reload`: 3 nodes, a round-robin balancer, so a reload's new socket usually
# lands on another node than the old one. `postmortem-safe` is the one-node fix; on three
# nodes each keeps its own registry (the cross-node policy `local`). The other four share
# something: every push goes to every node (`broadcast`), or one `user -> (node, conn)` map
# lives in the store, with a blind delete or a compare-and-delete.

# %% slideshow={"slide_type": "slide"}
designs = ["postmortem-safe", "broadcast", "shared-kick-old", "shared-kick-old-safe"]
reload = simkit.compare("multi-node-reload", designs, **SIZE)
table = reload.table(columns=COLUMNS)
table

# %%
local, fanout = table.loc["postmortem-safe"], table.loc["broadcast"]
blind, safe = table.loc["shared-kick-old"], table.loc["shared-kick-old-safe"]
assert local["delivery_ratio"] < 0.4  # a push entering at one node of three misses 2 in 3
assert fanout["delivery_ratio"] > 0.95 and safe["delivery_ratio"] > 0.95
assert blind["final_unroutable"] > 0 and not blind["invariants_hold"]
assert safe["invariants_hold"] and safe["cross_node_kicks"] > 0
print(
    f"one-node design on 3 nodes delivers {local['delivery_ratio']:.0%} of pushes; "
    f"shared map with blind DEL leaves {blind['final_unroutable']:.0f} tabs unroutable; "
    f"compare-and-delete in the store: {safe['cross_node_kicks']:.0f} kicks crossed nodes, "
    f"invariants hold"
)

# %% [markdown]
# The post-mortem's race (a race on the kit's `websockets` server, played here; on uvicorn's
# default implementation a certainty, notebook 02) did not go away with more nodes, it moved: the kick now crosses
# nodes over pub/sub, and the old socket's cleanup, on another node, still runs after the
# new entry was written. The shortest order that breaks the shared map, found by
# exhaustive search over two nodes, needs no second node at all: what breaks is the blind
# `DEL`, wherever the two handlers run.

# %%
print(counterexample("shared-kick-old", "unroutable"))

# %% [markdown]
# ## 2. Sticky sessions hide it; a node crash reveals it
#
# With a balancer that is sticky by user, a reload lands on the node that holds the old
# socket, so the one-node design's kick works again and no kick has to cross nodes.

# %%
rows = {}
for balancer in ("round-robin", "sticky"):
    for scenario in ("multi-node-reload", "node-crash"):
        local_run = simkit.run(scenario, "postmortem-safe", balancer=balancer, **SIZE).summary
        shared = simkit.run(scenario, "shared-kick-old", balancer=balancer, **SIZE).summary
        rows[(balancer, scenario)] = {
            "local: mean_stale": local_run["mean_stale"],
            "local: mean_duplicates": local_run["mean_duplicates"],
            "shared: cross_node_kicks": shared["cross_node_kicks"],
        }
sticky = pd.DataFrame(rows).T
sticky

# %%
rr, st = (
    sticky.loc[("round-robin", "multi-node-reload")],
    sticky.loc[("sticky", "multi-node-reload")],
)
crash = sticky.loc[("sticky", "node-crash")]
assert st["local: mean_stale"] < rr["local: mean_stale"]
assert st["local: mean_duplicates"] < rr["local: mean_duplicates"]
assert st["shared: cross_node_kicks"] == 0 and crash["shared: cross_node_kicks"] > 0
print(
    f"sticky: stale {rr['local: mean_stale']:.1f} -> {st['local: mean_stale']:.1f}, "
    f"cross-node kicks {rr['shared: cross_node_kicks']:.0f} -> 0; "
    f"after one node crash, {crash['shared: cross_node_kicks']:.0f} kicks cross nodes again"
)

# %% [markdown]
# Sticky sessions make a cluster look like one node until a node dies: its users move,
# and when it comes back, some return. Whatever the code never did across nodes it now
# does, under load.
#
# ## 3. Presence with a TTL against a careful delete
#
# `node-crash`: node 0 is killed at 40 % of the workload (no handler runs, its memory is
# gone) and is back 30 s later. Background tabs are frozen by the browser; a third of them
# are closed while frozen. Compare-and-delete never removes a newer entry, but nobody
# deletes the entries of a node that died; `presence-ttl` gives every entry a TTL (15 s)
# that each node's heartbeat refreshes (every 5 s).

# %%
crashed = simkit.compare("node-crash", ["shared-kick-old-safe", "presence-ttl"], **SIZE)
crashed.table(
    columns=[
        "peak_dead_node_entries",
        "mean_dead_node_entries",
        "final_dangling",
        "invariants_hold",
    ]
)

# %% slideshow={"slide_type": "slide"}
fig, ax = plt.subplots(figsize=(8, 3))
for name, result in crashed.results.items():
    ax.plot(result.timeseries["t"], result.timeseries["dead_node_entries"], label=name)
ax.set_xlabel("time (s)")
ax.set_ylabel("entries for dead nodes")
ax.legend()
fig.tight_layout()

# %%
cad, ttl = (crashed.results[n].summary for n in ("shared-kick-old-safe", "presence-ttl"))
assert cad["final_dangling"] > 0 and not cad["invariants_hold"]
assert ttl["final_dangling"] == 0 and ttl["invariants_hold"]
assert ttl["mean_dead_node_entries"] < cad["mean_dead_node_entries"]
print(
    f"compare-and-delete keeps {cad['final_dangling']} entries for sockets that died with "
    f"their node; with a TTL none remain (mean entries for dead nodes "
    f"{cad['mean_dead_node_entries']:.2f} -> {ttl['mean_dead_node_entries']:.2f})"
)

# %% [markdown]
# ## 4. Socket.IO, Phoenix, Centrifugo on the same workload
#
# Each system's choice, as the kit's policies stand in for it: Socket.IO's Redis adapter
# fans every push out to every node (`broadcast`, each node its own room membership);
# Phoenix tracks presences per process and broadcasts over PubSub, and a dead node's
# presences go with it (`broadcast` with every tab of a user registered: `multi`);
# Centrifugo keeps presence in Redis with a TTL its nodes refresh (`presence-ttl`).

# %%
systems = {
    "Socket.IO (broadcast)": simkit.STRATEGIES["broadcast"],
    "Phoenix (broadcast, multi)": simkit.STRATEGIES["multi-heartbeat"].replace(
        name="Phoenix (broadcast, multi)", cluster="broadcast"
    ),
    "Centrifugo (presence-ttl)": simkit.STRATEGIES["presence-ttl"],
}
for name, strategy in systems.items():
    systems[name] = strategy.replace(name=name)
same = simkit.compare("node-crash", list(systems.values()), **SIZE)
same.table(columns=["delivery_ratio", "mean_stale", "final_dangling", "store_ops_per_second"])

# %%
s = {name: r.summary for name, r in same.results.items()}
sio, phx, cen = (s[n] for n in systems)
assert sio["store_ops_per_second"] == phx["store_ops_per_second"] == 0  # no shared map
assert cen["store_ops_per_second"] > 0
assert all(x["final_dangling"] == 0 for x in (sio, phx, cen))
print(
    f"all three end clean after a node crash; Centrifugo's presence costs "
    f"{cen['store_ops_per_second']:.1f} store operations per second for 100 tabs, the "
    f"fan-out designs none (they pay in pub/sub traffic: every push to every node)"
)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Conclusion
#
# - A one-node design on several nodes loses most pushes (`local`); sharing is not
#   optional.
# - The post-mortem's race crosses nodes: the shared map needs compare-and-delete done
#   atomically in the store.
# - Sticky sessions hide cross-node kicks until a node crash moves users around.
# - Compare-and-delete cannot clean up after a node that died: entries need a TTL that
#   live nodes refresh (presence), or the registry must be per node with fan-out.
#
# The same scenarios run on real sockets with a real Redis:
# `simkit.run("node-crash", "presence-ttl", nodes=3, runtime="live")`.
