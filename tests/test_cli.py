import json
import subprocess
import sys
import time

import pytest

from simkit.cli import main, parser


def test_list_names_every_policy_and_preset(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "naive",
        "kick-old",
        "kick-old-safe",
        "reject-new",
        "multi",
        "resume",
        "websockets",
        "socketio",
        "signalr",
        "phoenix",
        "off",
        "fresh-per-load",
        "per-tab",
        "shared",
        "beforeunload",
        "pagehide",
        "disconnect-when-hidden",
        "single-flight",
        "immediate",
        "exponential",
        "full-jitter",
        "rfc6455",
        "before",
        "postmortem",
        "postmortem-safe",
        "multi-heartbeat",
        "reload-storm",
        "flaky-network",
        "strict-mode",
        "multi-tab",
        "hidden-tabs",
        "server-restart",
        "proxy-idle",
        "reference",
    ):
        assert f"  {name} " in out, name


def test_run_writes_its_three_files(tmp_path, capsys) -> None:
    code = main(
        [
            "run",
            "--scenario",
            "reload-storm",
            "--strategy",
            "before",
            "--tabs",
            "20",
            "--duration",
            "60",
            "--seed",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 2 and summary["tabs"] == 20
    assert (tmp_path / "timeseries.csv").read_text().startswith("t,open_sockets,live_tabs")
    assert (tmp_path / "connections.png").stat().st_size > 1000
    assert "delivery_ratio" in capsys.readouterr().out


def test_compare_writes_table_and_plot(tmp_path) -> None:
    code = main(
        [
            "compare",
            "--strategies",
            "before,postmortem-safe",
            "--tabs",
            "20",
            "--duration",
            "60",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    lines = (tmp_path / "comparison.csv").read_text().splitlines()
    assert lines[0].startswith("strategy,") and len(lines) == 3
    assert (tmp_path / "comparison.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--scenario", "nope"], "invalid choice: 'nope' (choose from 'reload-storm'"),
        (["compare", "--strategies", "before,nope"], "unknown strategy 'nope'; choose one of"),
        (["run", "--strategy", "before", "--tabs", "0"], "tabs must be a whole number >= 1, got 0"),
    ],
)
def test_bad_names_and_values_exit_nonzero_with_the_choices(argv, message, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simkit", *argv, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_serve_runs_until_ctrl_c_and_frees_its_port() -> None:
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # As from a terminal: a job started in the background (a CI runner, `cmd &` in a
    # script) inherits SIGINT ignored, and a server rightly keeps ignoring it then.
    proc = subprocess.Popen(
        [sys.executable, "-m", "simkit", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in out
    with socket.socket() as again:  # the port is free at once
        again.bind(("127.0.0.1", port))


@pytest.mark.parametrize("command", ["run", "compare"])
@pytest.mark.parametrize("runtime", ["virtual", "live", "browser"])
def test_run_and_compare_accept_every_runtime_simkit_run_does(command, runtime) -> None:
    from simkit.api import RUNTIMES

    assert runtime in RUNTIMES  # the CLI offers what simkit.run accepts, no more, no less
    args = parser().parse_args([command, "--runtime", runtime])
    assert args.runtime == runtime


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_bad_runtime_exits_2_listing_the_valid_ones(command, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simkit", command, "--runtime", "chrome", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "invalid choice: 'chrome' (choose from 'virtual', 'live', 'browser')" in done.stderr


@pytest.mark.parametrize("gone", ["bench", "soak"])
def test_benchmarks_are_not_commands_of_the_installed_kit(gone, capsys) -> None:
    # They live in the source checkout's benchmarks/ package (python -m benchmarks).
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args([gone])
    assert exit_.value.code == 2
    assert f"invalid choice: '{gone}'" in capsys.readouterr().err


@pytest.mark.browser  # skipped with the reason without Chromium (tests/conftest.py)
@pytest.mark.alone  # a Chromium run that must stay valid: it fell behind beside a neighbour
@pytest.mark.timeout(300)
def test_run_with_real_chromium_tabs_writes_its_files(tmp_path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simkit",
            "run",
            "--runtime",
            "browser",
            "--strategy",
            "postmortem-safe",
            "--tabs",
            "2",
            "--duration",
            "10",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["runtime"] == "browser" and summary["tabs"] == 2
    assert summary["connects"] >= 2  # both real tabs connected at least once
    assert (tmp_path / "timeseries.csv").read_text().startswith("t,open_sockets")


# --- gates for CI: --check, --junit, exit statuses 0/1/2/130 (docs/ci.md) ---------------

SMALL = ["--tabs", "20", "--duration", "60"]


def test_run_exits_0_when_every_check_passes(tmp_path, capsys) -> None:
    code = main(
        ["run", "--strategy", "postmortem-safe", *SMALL, "--out", str(tmp_path),
         "--check", "invariants", "--check", "final_unroutable==0", "--check", "valid"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "check PASS: final_unroutable = 0, limit final_unroutable == 0 (ok)" in out
    assert json.loads((tmp_path / "summary.json").read_text())["run_valid"] is True


def test_failed_invariants_exit_1_only_when_checked(tmp_path, capsys) -> None:
    argv = ["run", "--strategy", "before", *SMALL, "--out", str(tmp_path)]
    assert main(argv) == 0  # without --check the run is a measurement, not a gate
    assert main([*argv, "--check", "invariants"]) == 1
    captured = capsys.readouterr()
    assert "check FAIL: invariants: invariants_hold is False" in captured.out
    assert "1 check(s) failed; exit status 1" in captured.err


def test_compare_checks_every_strategy_and_writes_junit(tmp_path, capsys) -> None:
    import xml.etree.ElementTree as ET

    junit = tmp_path / "reports" / "simkit.xml"
    code = main(
        ["compare", "--strategies", "before,postmortem-safe", *SMALL, "--out", str(tmp_path),
         "--check", "final_unroutable==0", "--check", "delivery_ratio>=0", "--junit", str(junit)]
    )  # fmt: skip
    assert code == 1  # 'before' strands sockets: final_unroutable > 0
    root = ET.parse(junit).getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert len(cases) == 6  # (run_valid + 2 checks) x 2 strategies
    assert cases[("reload-storm.before", "final_unroutable==0")].find("failure") is not None
    assert cases[("reload-storm.postmortem-safe", "final_unroutable==0")].find("failure") is None
    assert "before: check FAIL: final_unroutable" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--check", "final_unroutable=0"], "bad check 'final_unroutable=0'"),
        (["--check", "final_unrotable==0"], "unknown metric 'final_unrotable'"),
        (["--duration", "1e12"], "the limit is 2,000,000 samples"),
        (["--tabs", "100000000", "--duration", "100000"], "tab-seconds"),
        (["--runtime", "live", "--scale", "1e9"], "the limit is a day"),
        (["--target", "ws://[::1"], "is not a URL"),
        (["--junit", "."], "is a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(extra, message, tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "simkit", "run", "--strategy", "postmortem",
         "--out", str(tmp_path / "out"), *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()  # nothing was run, nothing written


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_an_output_path_that_cannot_be_a_folder_fails_before_the_run(kind, tmp_path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if kind == "file" else blocker / "sub"
    started = time.monotonic()
    # 20,000 tabs would play for minutes: the error must come before the run
    done = subprocess.run(
        [sys.executable, "-m", "simkit", "run", "--strategy", "postmortem", "--tabs", "20000",
         "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"--out {str(out)!r}" in done.stderr and done.stderr.count("\n") == 1
    assert time.monotonic() - started < 20


def test_ctrl_c_prints_one_line_exits_130_and_writes_nothing(tmp_path) -> None:
    """Ctrl-C while the run plays. The signal is sent once the progress bar has moved (the
    run is playing), not after a fixed sleep: on a loaded machine 5 s was still the import,
    where Python's own KeyboardInterrupt (exit -2) is the right answer."""
    import signal
    import threading

    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simkit", "run", "--strategy", "postmortem", "--tabs", "5000",
         "--duration", "3000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # as a shell starts it: an xdist worker may ignore SIGINT, and the kit keeps an
        # inherited ignore (a background job's), so the child would never see the Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    chunks: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(64), "")))
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while "1/" not in "".join(chunks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "1/" in "".join(chunks), "".join(chunks)[-2000:]  # playing: a sim-second done
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
    err = "".join(chunks)
    assert proc.returncode == 130, err[-2000:]
    lines = [x for x in err.replace("\r", "\n").splitlines() if x.strip() and "sim-s" not in x]
    assert lines == ["python -m simkit: interrupted; nothing written"], err[-2000:]
    assert not out.exists()
