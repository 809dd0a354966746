"""The shipped calibration (real Chromium, ``python -m simkit calibrate``) against what the
virtual tab model predicts for the same events. No browser needed: this reads the JSON.

When a number disagrees, the message names the number that moved and both values; the lead
decides whether the model or the calibration is right.
"""

import pytest

import simkit
import simkit.actors.env
from simkit.browser.calibrate import load
from simkit.calibration import TIMING, BrowserTiming, timing
from simkit.model.latency import Latency
from simkit.scenarios import SCENARIOS

CAL = load()
CASES = CAL["cases"]


def measured_code(case: str) -> str:
    """The close code the server saw in (nearly) every repetition of ``case``."""
    codes = CASES[case]["codes"]
    code, count = max(codes.items(), key=lambda item: item[1])
    assert count >= 0.9 * CASES[case]["reps"], f"{case}: no dominant close code in {codes}"
    return code


def model(action: str, unload: str) -> dict:
    """Play one tab in the virtual runtime: load, then ``action``; what the server saw."""

    async def script(tab, sc):
        await tab.sleep(1.0)
        tab.load()
        await tab.sleep(2.0)
        if action == "reload":
            await tab.reload(0.05)
        elif action == "close":
            tab.close()
        elif action == "crash":
            tab.crash()
        elif action == "process_dies":
            tab.process_dies()

    sc = SCENARIOS["reload-storm"].with_(
        name=f"model-{action}", script=script, latency=Latency(0.001, 0.0), push_rate=0.0
    )
    strategy = simkit.make_strategy(
        "model", registry="multi", liveness="off", identity="shared", unload=unload
    )
    r = simkit.run(sc, strategy, tabs=1, duration=5.0, settle=5.0, trace=True)
    trace = r.trace
    cleanups = trace[trace.event == "server-cleanup"]
    opens = trace[trace.event == "server-open"]
    first = cleanups.iloc[0]
    out = {"code": str(int(first.code)), "close_t": float(first.time)}
    if len(opens) > 1:
        out["new_open_minus_old_close"] = float(opens.iloc[1].time) - out["close_t"]
    return out


def test_calibration_file_is_complete():
    assert CAL["reps"] >= 20, "the shipped calibration must have at least 20 repetitions"
    assert CAL["chromium"].startswith("Chromium"), CAL["chromium"]
    assert CAL["websockets"]
    for case in ("reload/none", "reload/pagehide", "close/none", "crash/none"):
        assert CASES[case]["reps"] >= 20, case


@pytest.mark.parametrize(
    "case, action, unload",
    [
        ("reload/none", "reload", "none"),
        ("reload/pagehide", "reload", "pagehide"),
        ("reload/beforeunload", "reload", "beforeunload"),
        ("close/none", "close", "none"),
        ("close/pagehide", "close", "pagehide"),
        ("close/beforeunload", "close", "beforeunload"),
    ],
)
def test_close_code_matches_model(case, action, unload):
    predicted = model(action, unload)["code"]
    seen = measured_code(case)
    assert seen == predicted, (
        f"close code on {case} moved: Chromium measured {seen} ({CASES[case]['codes']}), "
        f"the tab model predicts {predicted}"
    )


def test_crash_code_matches_model():
    predicted = model("crash", "none")["code"]
    seen = measured_code("crash/none")
    assert seen == predicted, (
        f"close code on crash (renderer) moved: Chromium measured {seen} "
        f"({CASES['crash/none']['codes']}), the tab model predicts {predicted}"
    )


def test_whole_browser_death_is_1006_as_the_model_says():
    predicted = model("process_dies", "none")["code"]
    for case in ("network-service-kill/none", "process-group-kill/none"):
        seen = measured_code(case)
        assert seen == predicted, (
            f"close code on {case} moved: Chromium measured {seen}, the model's "
            f"process_dies predicts {predicted}"
        )


@pytest.mark.parametrize("case", ["reload/none", "reload/pagehide", "reload/beforeunload"])
def test_reload_ordering_matches_model(case):
    """The model's old socket closes ``TIMING.unload_close`` after unload (1000 at once with
    a handler): its close reaches the server before the new page's handshake. Chromium
    agrees if the old close comes first in (nearly) every repetition."""
    unload = case.split("/")[1]
    predicted = model("reload", unload)["new_open_minus_old_close"]
    assert predicted > 0, f"the model now opens the new socket first on {case}"
    data = CASES[case]
    first, reps = data["old_close_first"], data["new_open_minus_old_close"]["n"]
    assert first >= 0.9 * reps, (
        f"ordering on {case} moved: the old close reached the server first in only "
        f"{first}/{reps} reloads (model: always, gap {predicted * 1000:.0f} ms)"
    )
    gap = data["new_open_minus_old_close"]["p50"]
    assert 0 < gap < 0.5, f"median gap between old close and new open on {case} moved: {gap} s"


def test_beforeunload_is_not_run_by_page_close():
    """The model: page.close() runs pagehide, not beforeunload (so 1001 there)."""
    assert measured_code("close/beforeunload") == "1001"
    assert measured_code("close/pagehide") == "1000"


def p50(case: str) -> float:
    return CASES[case]["close_after_action"]["p50"]


@pytest.mark.parametrize(
    "later, earlier, action, unload",
    [
        ("reload/none", "reload/pagehide", "reload", "none"),
        ("close/none", "close/pagehide", "close", "none"),
        ("crash/none", "close/pagehide", "crash", "none"),
    ],
)
def test_model_close_delays_are_chromiums(later, earlier, action, unload):
    """The virtual tab model takes its defaults from the calibration: the delay it puts
    between a handler's close and the browser's own equals Chromium's median difference
    (tolerance 1 ms: the model's defaults are rounded to 0.1 ms)."""
    reference = "close" if earlier.startswith("close") else "reload"
    predicted = model(action, unload)["close_t"] - model(reference, "pagehide")["close_t"]
    measured = p50(later) - p50(earlier)
    assert predicted == pytest.approx(max(0.0, measured), abs=0.001), (
        f"{later} minus {earlier} moved: Chromium's medians differ by "
        f"{measured * 1000:.1f} ms, the tab model by {predicted * 1000:.1f} ms"
    )


def test_defaults_come_from_the_shipped_file():
    assert timing(load()) == TIMING
    assert simkit.actors.env.Env.__dataclass_fields__["timing"].default is TIMING
    assert "Chromium" in TIMING.source


def test_a_calibration_missing_a_case_says_which():
    broken = {"cases": {k: v for k, v in CASES.items() if k != "close/none"}}
    with pytest.raises(ValueError, match="close/none"):
        timing(broken)
    with pytest.raises(ValueError, match="tab_close must be in"):
        BrowserTiming(unload_close=0.0, tab_close=-1.0, crash_close=0.0)
