# %% [markdown] slideshow={"slide_type": "slide"}
# # 07 · Scale
#
# **What you'll learn:** that the virtual runtime plays thousands of tabs in seconds of
# wall-clock time; how each metric grows with the number of tabs; why the per-tab numbers of
# a small run already tell you the big picture (and when they would not).
#
# **What you'll do:** play `reload-storm` at four sizes up to `TABS` under `before` and
# `postmortem-safe`, divide every metric by the number of tabs and compare; then measure,
# with `simkit.sweep` on a local Dask cluster, how much one seed of a small run says, and
# see how the same study goes to a cluster of many machines.
#
# **What you need:** notebook 01. With the default `TABS = 4000` it runs in about 25 s
# (1.8 million simulated tab-seconds, then 32 small runs over eight seeds).
# The next cell is tagged `parameters` (the papermill convention): to go bigger, run e.g.
# `papermill 07_scale.ipynb out.ipynb -p TABS 20000` or edit the cell. Outputs are checked
# in CI for the defaults only.
#
# ## The question
#
# Production has thousands of tabs, the other notebooks use 100. **Do the numbers measured
# on 100 tabs hold at thousands: does each metric per tab stay the same as the number of
# tabs grows?**

# %% slideshow={"slide_type": "skip"}
TABS = 4000
DURATION = 120
SEED = 0
SEEDS = 8  # the seed study: seeds 0-7

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (imports only; output ignored because a fresh matplotlib may print a font-cache notice)
import time

import matplotlib.pyplot as plt
import pandas as pd

import simkit

pd.set_option("display.width", 120)
SIZES = [TABS // 8, TABS // 4, TABS // 2, TABS]
STRATEGIES = ["before", "postmortem-safe"]
PER_TAB = ["mean_open_sockets", "mean_stale", "mean_unroutable", "mean_duplicates", "connects",
           "pushes_sent", "heartbeat_pings"]

# %% [markdown]
# ## The experiment
#
# Same scenario, same seed, four sizes. Every tab has its own random streams (derived from
# the seed and the tab's index), so tab 7 behaves the same in every run it takes part in:
# growing the run adds tabs, it does not reshuffle the ones already there.

# %% slideshow={"slide_type": "slide"}
results, wall = {}, {}
for strategy in STRATEGIES:
    for tabs in SIZES:
        start = time.perf_counter()
        results[(strategy, tabs)] = simkit.run(
            "reload-storm", strategy, tabs=tabs, duration=DURATION, seed=SEED, progress=False
        )
        wall[(strategy, tabs)] = time.perf_counter() - start
rows = {
    key: {**{f"{m}/tab": r.summary[m] / key[1] for m in PER_TAB},
          "delivery_ratio": r.summary["delivery_ratio"]}
    for key, r in results.items()
}
per_tab = pd.DataFrame.from_dict(rows, orient="index")
per_tab.index.names = ["strategy", "tabs"]
print(per_tab.round(4).to_string())

# %% [markdown]
# How long that took (wall clock, so it differs from machine to machine; not checked):

# %%
# NBVAL_IGNORE_OUTPUT
speed = pd.Series(wall, name="seconds").to_frame()
speed["tab-seconds per second"] = [t * DURATION / s for (_, t), s in wall.items()]
print(speed.round(2).to_string())
print(f"total: {sum(wall.values()):.1f} s of wall clock for "
      f"{sum(SIZES) * len(STRATEGIES) * DURATION:,} simulated tab-seconds")

# %% [markdown]
# ## The plot
#
# Left: every per-tab metric against the number of tabs (log scale), one colour per metric,
# one line style per strategy; flat lines mean "proportional to the number of tabs". Right:
# the share of server sockets that are stale, over the workload (t <= 120 s, the span the
# means cover; each strategy then settles for its own length, so the runs end at different
# times and are cut here), one shade per size (darker is bigger), the same line style per
# strategy: the curves lie on top of each other.

# %% slideshow={"slide_type": "slide"}
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
for strategy, style in zip(STRATEGIES, ["-", "--"], strict=True):
    frame = per_tab.xs(strategy)
    for color, metric in enumerate(["mean_open_sockets/tab", "mean_stale/tab",
                                    "mean_unroutable/tab"]):
        left.plot(frame.index, frame[metric], style, color=f"C{color}", marker="o",
                  label=f"{strategy}: {metric}")
    for shade, tabs in zip([0.35, 0.55, 0.75, 0.95], SIZES, strict=True):
        ts = results[(strategy, tabs)].timeseries
        ts = ts[ts.t <= DURATION]  # the workload; the settle period differs per strategy
        share = ts.stale / ts.open_sockets.where(ts.open_sockets > 0)
        right.plot(ts.t, share, style, lw=1, color=plt.cm.Greys(shade),
                   label=f"{strategy}, {tabs} tabs")
left.set_xscale("log")
left.set_xticks(SIZES, [str(n) for n in SIZES])
left.minorticks_off()
left.set_xlabel("tabs")
left.set_ylabel("per tab")
left.legend(fontsize="x-small")
right.set_xlim(0, DURATION)
right.set_title("stale share over the workload (shade: tabs)", fontsize="small")
left.set_title("per-tab metrics (colour: metric, style: strategy)", fontsize="small")
right.set_xlabel("time (s)")
right.set_ylabel("stale / open sockets")
right.legend(fontsize="x-small", ncols=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The check
#
# For each strategy and metric, the spread of the per-tab value across the four sizes,
# relative to its mean:

# %%
spread = per_tab.groupby(level="strategy").agg(lambda x: (x.max() - x.min()) / max(x.max(), 1e-9))
print(spread.round(3).to_string())
safe_unroutable = per_tab.xs("postmortem-safe")["mean_unroutable/tab"]
assert (spread.drop(columns="mean_unroutable/tab") < 0.05).all().all()
assert spread.loc["before", "mean_unroutable/tab"] < 0.05
assert safe_unroutable.max() < 0.001  # a handful of tab-seconds in the whole run
big, small = results[("before", TABS)].summary, results[("before", SIZES[0])].summary
assert abs(big["mean_stale"] / small["mean_stale"] / (TABS / SIZES[0]) - 1) < 0.05

# %% [markdown]
# ## How much does one seed say?
#
# Every run above used seed 0, as every other notebook does. A seed is one draw of the
# workload (who reloads when, whose network drops); a different seed is an equally likely
# afternoon. `simkit.sweep` plays both strategies at 100 tabs (the other notebooks' size)
# and at 500 on seeds 0-7, each run on a worker of a local Dask cluster, and gives every
# mean with its 95 % confidence interval. (One sweep per strategy, so that each settles as
# long as `simkit.run` lets it, as above.)

# %% slideshow={"slide_type": "skip"}
# NBVAL_IGNORE_OUTPUT
# (a local Dask cluster, one worker process per core; its size differs between machines)
from distributed import Client

from simkit.study import local_cluster

cluster = local_cluster()
client = Client(cluster)
print(f"{len(client.scheduler_info()['workers'])} workers at {cluster.scheduler_address}")

# %%
studies = {strategy: simkit.sweep("reload-storm", strategy, grid={"tabs": [100, SIZES[0]]},
                                  seeds=SEEDS, duration=DURATION, client=client, progress=False)
           for strategy in STRATEGIES}
seeds = pd.concat([study.runs for study in studies.values()], ignore_index=True)
seeds["stale/tab"] = seeds["mean_stale"] / seeds["tabs"]
by_seed = seeds.pivot_table(index=["strategy", "tabs"], columns="seed", values="stale/tab")
print("stale sockets per tab, one column per seed:")
print(by_seed.round(3).to_string())

stats = pd.concat([study.metric("mean_stale") for study in studies.values()])
stats = stats.droplevel("scenario")
per_tab = stats[["mean", "ci95"]].div(stats.index.get_level_values("tabs"), axis=0)
per_tab["lowest seed"] = by_seed.min(axis=1)
per_tab["highest seed"] = by_seed.max(axis=1)
per_tab[f"seed {SEED}"] = by_seed[SEED]
print("\nstale sockets per tab over the seeds (mean, 95 % interval):")
print(per_tab.round(4).to_string())

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for ax, strategy in zip(axes, STRATEGIES, strict=True):
    for x, tabs in enumerate([100, SIZES[0]]):
        values = by_seed.loc[(strategy, tabs)]
        ax.plot([x] * len(values), values, "o", color="grey", alpha=0.6,
                label="one seed" if x == 0 else None)
        ax.plot(x, values[SEED], "o", color="tab:red", ms=8,
                label=f"seed {SEED}" if x == 0 else None)
        row = per_tab.loc[(strategy, tabs)]
        ax.errorbar(x + 0.15, row["mean"], yerr=row["ci95"], fmt="s", color="black", capsize=4,
                    label="mean, 95 %" if x == 0 else None)
    ax.set_xticks([0, 1], [f"{n} tabs" for n in (100, SIZES[0])])
    ax.set_xlim(-0.5, 1.5)
    ax.set_title(strategy)
    ax.set_ylabel("stale sockets per tab")
    ax.legend(fontsize="x-small")
fig.tight_layout()
plt.show()

# %%
before100, before500 = per_tab.loc[("before", 100)], per_tab.loc[("before", SIZES[0])]
assert by_seed.loc[("before", 100)].idxmax() == SEED  # seed 0 is the high outlier
assert not (before100["mean"] - before100["ci95"] <= before100[f"seed {SEED}"]
            <= before100["mean"] + before100["ci95"])
wide = before100["highest seed"] - before100["lowest seed"]
assert wide > 1.5 * (before500["highest seed"] - before500["lowest seed"])
for strategy in STRATEGIES:  # the means over seeds agree across sizes, within their intervals
    small, large = per_tab.loc[(strategy, 100)], per_tab.loc[(strategy, SIZES[0])]
    assert abs(small["mean"] - large["mean"]) <= small["ci95"] + large["ci95"]
seed0 = results[("before", SIZES[0])].summary["mean_stale"] / SIZES[0]
assert seed0 == by_seed.loc[("before", SIZES[0]), SEED]  # the sweep's run is simkit.run's

# %% [markdown]
# The per-tab numbers that stay flat across sizes are flat *as means*; a single run
# scatters around its mean, and the smaller the run, the wider. At 100 tabs `before`'s
# stale sockets per tab range from 0.274 to 0.366 over seeds 0-7, and seed 0, the one every
# notebook uses, is the highest of the eight: 0.366, 17 % above the mean and outside its
# 95 % interval (0.312 +-0.030). At 500 tabs the seeds span about half that range
# (0.288-0.339) and the mean is 0.311 +-0.016, the same as at 100 tabs. `postmortem-safe`
# behaves the same way at a smaller scale (0.068-0.083 per tab at 100 tabs, seed 0 again
# the highest; mean 0.0740 +-0.0043 at 100 tabs, +-0.0026 at 500).
#
# So a 100-tab run tells the truth about thousands only on average: one seed can be off by
# a sixth, and a number quoted to three significant figures needs several seeds and its
# interval (eight seeds at 100 tabs cost less than one run at 4,000 tabs and pin the mean
# to about +-10 %). The other notebooks' 100-tab comparisons still show *which* design is
# better (the gaps between strategies are many times the seed spread); their third digit
# is seed 0's.
#
# ## The same study on many machines
#
# A real design study (5 strategies x 8 scenarios x 6 values x 20 seeds at 2,000 tabs is
# about 5,000 runs) takes hours on one machine. `simkit.sweep` only hands runs to Dask, so
# the same call runs on any Dask cluster and returns the same frame, bit for bit, whatever
# the cluster. On the machines (each with the same simkit and Python installed):
#
# ```sh
# dask scheduler --host 10.0.0.1 --port 8786                   # one machine
# dask worker tcp://10.0.0.1:8786 --nworkers auto --nthreads 1  # every machine
# ```
#
# then point the sweep at the scheduler (`scheduler=` is the address, or pass an existing
# `distributed.Client` as `client=`; from a terminal, `python -m simkit sweep ...
# --scheduler tcp://10.0.0.1:8786`). Dask's plain TCP is unauthenticated: keep the
# scheduler on a trusted network, or use TLS (`distributed.Security`). Not run here; the
# cell below shows the call.

# %%
# Not run in CI (there is no scheduler at this address):
# study = simkit.sweep(list(simkit.SCENARIOS)[:8], list(simkit.STRATEGIES),
#                      grid={"heartbeat": [5, 10, 20, 30, 45, 60]}, seeds=20, tabs=2000,
#                      duration=300, scheduler="tcp://10.0.0.1:8786")
# study.runs.to_csv("runs.csv", index=False); study.tidy().to_csv("summary.csv", index=False)
client.close()
cluster.close()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## What the numbers say
#
# From 500 to 4000 tabs, every per-tab number stays put: `before` holds about 1.25 sockets
# per tab (0.30-0.31 of them stale), about half of its tabs are unroutable (0.47-0.48 per
# tab) and the delivery ratio is near 0.48; `postmortem-safe` about 1.02 sockets per tab
# with 0.073 stale and a delivery ratio near 0.977. Those are seed 0's; over seeds 0-7 at
# 500 tabs the stale sockets per tab are 0.311 +-0.016 (`before`) and 0.0737 +-0.0026
# (`postmortem-safe`), 95 % intervals, so seed 0 sits inside them at this size. Across the four sizes every per-tab number varies by less than 5 % of its
# value (at most 2.7 %). The one exception is a number too small to have a spread:
# `postmortem-safe`'s unroutable tabs are 0 at 500 and 1000 tabs and a single tab for one to
# three one-second samples at 2000 and 4000 tabs (under 0.00001 per tab). Totals therefore
# grow linearly: eight times the tabs, eight times the stale sockets.
#
# That holds because in this model tabs interact only through the registry entries of
# *their own* user: nothing is shared across users, so adding users adds independent
# copies of the same story. It would stop holding where something global couples them: a
# server restart (every tab reconnects at once, the herd of exercise 3), a connection limit,
# or a server that slows down with load. The kit does not model server CPU; a herd is
# measured as a connect *rate* instead.
#
# ## Summary
#
# * Per-tab metrics are flat across 500-4000 tabs (within 3 %), as means. One seed of a
#   100-tab run scatters around that mean by up to a sixth (seed 0, the notebooks' seed,
#   is `before`'s highest of eight): small runs tell the truth about thousands when several
#   seeds are averaged and the interval is quoted (`simkit.sweep` does both).
# * A study too big for one machine runs unchanged on a Dask cluster (`scheduler=`).
# * The virtual runtime runs thousands of tabs for minutes of simulated time in seconds
#   (see the timing table); set `TABS` higher in the `parameters` cell to go further.
# * Scale-free per-tab numbers are a property of workloads without global coupling; herds
#   and limits are where size matters.
