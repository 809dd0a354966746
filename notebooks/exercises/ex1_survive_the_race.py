# %% [markdown]
# # Exercise 1 · Survive the race, keep every tab
#
# **What you'll learn:** to design a registry policy of your own that stays true through
# the cleanup race *and* for people with several tabs open, and to score it with the same
# harness the built-in strategies use.
#
# **What you'll do:** replace the post-mortem's registry (kick the old socket, then
# `del registry[user_id]` on disconnect) with a design that passes `exercise(1, ...)`.
# Notebook 02's one-line fix is not enough here: it kicks a user's other tabs.
#
# **What you need:** notebook 02 (the cleanup race). The solution is in
# `ex1_solution.ipynb`; try first.
#
# ## Words the grade uses
#
# * An **entry** is a `(user, connection)` pair your registry holds: `entries()` lists them,
#   and `route(user)` must give exactly that user's connections.
# * An entry is **dangling** when its connection is already closed (pushes sent down it are
#   lost, and "is alice online?" answers yes for nobody).
# * A tab is **unroutable** when it is connected but no entry points at its socket (its
#   pushes go nowhere).
# * A socket is **stale** when it is still open on the server though its page is gone.
# * A tab is **kicked** when the server closes the socket of a page that is still open and
#   using it.
#
# ## The task
#
# A registry policy is a plain object: the server calls `connect(hello, now)` when a
# handshake completes (`hello.conn` is the new connection's id, `hello.user` the id it
# claims), `disconnect(conn, user, now)` when a connection's handler finishes (the socket is
# closed, whatever the reason), `route(user)` to find where a push goes, and `entries()` to
# list every `(user, conn)` it would route to. `connect` and `disconnect` return a list of
# actions, e.g. `Close(conn, code, reason)` to close an existing connection. A registry may
# also keep a timer: `deadline()` says when the server must next call `expire(now)`.
#
# The class below is `kick-old` exactly as the post-mortem shipped it. **Write a registry
# that survives the race and keeps every tab of a user reachable**: `exercise(1, MyRegistry)`
# must print PASS. It must be your own design: the kit's registries (`KickOldSafe`,
# `Multi`, ...), subclasses of them and classes that hand them the work are refused, with
# the reason. The grader runs your registry inside the `postmortem-safe` client and
# heartbeat, so the registry is the only thing that differs. It believes only what your
# registry holds: pushes go down `route()`, dangling and unroutable are counted from
# `entries()`, and overriding `routes_to` or `audit` changes nothing.
#
# **What the grade checks**, on five workloads of 50 tabs for 120 s (`reload-storm`,
# `strict-mode`, `flaky-network`, `come-and-go`: people who reload a few times and leave
# for good, most within seconds of their last load, and `multi-tab`: people with 2-3 tabs
# open at once), each over five seeds, after the run has settled:
#
# 1. 0 stale sockets, 0 dangling entries, 0 unroutable tabs, 0 disconnected tabs, and no
#    more open sockets than connected tabs;
# 2. at least 90 % of pushes delivered (60 % on `flaky-network`, whose network drops);
# 3. `route(user)` gives exactly the user's pairs in `entries()`;
# 4. no entry pairs a user with another user's connection;
# 5. entries change only for the user whose connection just opened or closed, except in
#    `expire(now)`, which may **remove** entries (a time-to-live) but never add one or point
#    a user at another connection: nothing asked for it;
# 6. 0 live tabs kicked.

# %%
from simkit.grading import exercise
from simkit.model import Close, CloseCode, Registry
from simkit.model.explore import counterexample

# %%
# YOUR ANSWER: edit this class.
class MyRegistry(Registry):
    name = "my-registry"
    summary = "kick the old connection, then register; clean up on disconnect"

    def __init__(self):
        self.map = {}  # user -> conn

    def connect(self, hello, now):
        old = self.map.get(hello.user)
        self.map[hello.user] = hello.conn
        if old is None or old == hello.conn:
            return []
        return [Close(old, CloseCode.REPLACED, "replaced by a newer connection")]

    def disconnect(self, conn, user, now):
        self.map.pop(user, None)  # del registry[user_id]
        return []

    def route(self, user):
        conn = self.map.get(user)
        return () if conn is None else (conn,)

    def entries(self):
        return list(self.map.items())


# %% [markdown]
# ## Check 1: the shortest event order that breaks it
#
# `counterexample` tries every order of open / close / cleanup / silent network / heartbeat
# reap for one user and up to three connections, and prints the shortest one that breaks
# the invariant you name (`None` when there is none). Try both: a registry that never
# deletes anything is never unroutable, and dangling at once.

# %%
for invariant in ["unroutable", "dangling"]:
    print(counterexample(MyRegistry, invariant))

# %% [markdown]
# ## Check 2: the grade
#
# Each row prints the worst seed's number and its limit.

# %%
g = exercise(1, MyRegistry)
print(g)
print()
print("PASSED: well done." if g.passed else "Not yet: look at the failed rows above.")

# %% [markdown]
# ## Hints
#
# 1. The handler that calls `disconnect` knows *which* connection it served, not only the
#    user. What else could be in your registry for that user by the time it runs?
# 2. On `multi-tab`, how many connections does one user legitimately have?
# 3. Who closes the socket of a reloaded tab if you no longer kick it?
#
# ## Extensions for fast pairs
#
# * **A cap.** Keep at most 3 connections per user: a fourth closes that user's oldest with
#   `Close(conn, CloseCode.REPLACED, ...)`. Does it still pass? Think of a user with three
#   tabs who reloads one of them. Which check fails with a cap of 1, and why?
# * **A grace period.** Keep a closed connection's entry for 2 s (a reload's new socket
#   arrives within that time, so "is alice online?" does not flicker) and drop it in
#   `expire(now)`, with `deadline()` returning when the next one is due. Does it still
#   pass? Which row moves, and why is the drop in `expire` allowed where an addition is not?
