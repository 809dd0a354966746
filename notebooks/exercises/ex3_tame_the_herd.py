# %% [markdown]
# # Exercise 3 · Tame the herd
#
# **What you'll learn:** why "reconnect at once" turns a server restart into a stampede, and
# how a reconnect backoff spreads it out at the price of a few more missed pushes.
#
# **What you'll do:** design the client's reconnect `Backoff` so that the `server-restart`
# scenario keeps its reconnect herd low and still reconnects soon: `exercise(3, ...)`.
#
# **What you need:** notebook 06 (restarts and herds). The solution is in
# `ex3_solution.ipynb`; try first.
#
# ## The situation
#
# In `server-restart`, 100 tabs are connected when the server process dies at t = 60 s and
# comes back a few seconds later. Every socket drops at once; while the server is down
# every attempt is refused, and each refusal triggers the next attempt after the backoff.
# Outages are not all alike: a crash with a supervisor is back in a second or two, a
# deploy in several, a database migration or a region failing over takes minutes. The
# grade counts two rates from the restart on: the most connections the server *accepted*
# in one second (each costs a TLS handshake and usually an authentication), and the most
# connection *attempts* begun in one second, refused ones included (while the server is
# down, its load balancer still takes every one).
#
# A `Backoff` has a `mode` and a few numbers:
#
# * `Backoff("immediate")`: retry at once, every time.
# * `Backoff("exponential", base, factor, max_delay, randomization)`: `base * factor**(n-1)`
#   capped at `max_delay`, randomised by +-`randomization` (Socket.IO: 1, 2, 5, 0.5).
# * `Backoff("full-jitter", base, factor, max_delay)`: uniform between `base` and the
#   growing cap (Centrifugo's numbers: 0.5, 2, 20; note that the kit's first delay is
#   exactly `base`, where Centrifugo's clients draw it).
# * `Backoff("rfc6455", base, factor, max_delay, first_max=...)`: RFC 6455 section 7.2.3, a
#   random first delay in [0, `first_max`], then truncated exponential growth.

# %%
import simkit
from simkit.grading import exercise
from simkit.model import Backoff

SAFE = simkit.STRATEGIES["postmortem-safe"]

# %% [markdown]
# ## The task
#
# Choose `BACKOFF`. `exercise(3, BACKOFF)` plays two workloads of 100 tabs, each over five
# seeds, and **the outage's length changes with the seed**, so no delay can be tuned to
# one length:
#
# * `server-restart` (120 s; the server is down from 60 s for 5, 1, 3, 8 and 2 s on seeds
#   0-4), on each seed:
#   every invariant holds after settling; from the restart on, **at most 45 attempts begin
#   and at most 40 connections are accepted in any one second**; **each tab spends at most
#   4 s offline beyond the outage itself**, on average (a backoff that waits too long after
#   a short outage misses pushes); and at least 88 % of pushes are delivered;
# * `long-outage` (240 s; the server is down from 60 s for 90, 60, 120, 75 and 105 s), on
#   each seed: every invariant holds; the same two herd limits; in the outage's last 30 s,
#   **at most 5 attempts per tab per minute** (a tab refused for a minute should try
#   rarely: the delay must grow); and **at most 30 s offline beyond the outage** per tab
#   on average.
#
# On both, every delay must be a number in [0, 3600] s, and no tab's delays may depend on
# another tab's. A subclass of `Backoff` with its own `delay(attempt, rng)` is fine, but
# like a real page's script, each tab runs its own copy (state kept on `self` is per tab;
# state shared across tabs, e.g. a class attribute or a module-level counter, fails).
# **Draw random numbers from `rng`**, the random stream the grader passes to each call: it
# is seeded from the tab's own stream, so every run replays exactly and the grader can
# replay each tab alone to check it depended on nothing else. Python's module-level
# `random` is seeded from the same stream for the duration of each call, so
# `random.uniform` works too; a clock or anything shared does not.

# %%
# YOUR ANSWER: change this.
BACKOFF = Backoff("immediate")

# %%
g = exercise(3, BACKOFF)
print(g)
print()
print("PASSED: well done." if g.passed else "Not yet: look at the failed rows above.")

# %% [markdown]
# ## Hints
#
# 1. The tabs arrive spread over 5 s at the start (about 30 connections per second): the
#    herd after the restart can be spread at least as thin.
# 2. A 1 s outage and a 120 s one want different things from the same backoff: a short,
#    random first delay, then growth.
# 3. If every tab waits the same delay, the herd just arrives later. What spreads the first
#    retry out?
# 4. Plot `g.results["server-restart seed 0"].trace` events `connect` per second to see the
#    herd.
