"""``python -m simkit doctor`` tells a trainer the truth about a machine: each check fails
when what it checks is missing, the report names the notebooks it affects and the fix, the
exit code is 1 exactly when a required check fails, and a stuck live run is killed at its
bound. The real live run (a few seconds on 127.0.0.1) is marked ``live``."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from simkit import doctor
from simkit.doctor import Finding


def test_python_version_floor() -> None:
    assert doctor.check_python((3, 11, 0)).ok
    old = doctor.check_python((3, 10, 12))
    assert not old.ok and old.required and "3.10.12" in old.detail and "3.11" in old.fix


def test_missing_packages_are_named_with_the_lean_install() -> None:
    found = doctor.check_packages(["pandas", "matplotlib"])
    assert found.ok
    missing = doctor.check_packages(["pandas", "simkit_no_such_package"])
    assert not missing.ok and missing.required
    assert "simkit_no_such_package" in missing.detail and "pandas" not in missing.detail
    assert "make course" in missing.fix


def test_loopback_ports_can_be_bound_here() -> None:
    found = doctor.check_ports(3)
    assert found.ok, found.detail


def test_optional_tools_missing_do_not_fail_the_doctor(tmp_path: Path) -> None:
    chromium = doctor.check_chromium(str(tmp_path / "no-chromium"))
    assert not chromium.ok and not chromium.required
    assert "apt-get install -y chromium" in chromium.fix
    assert chromium.notebooks == ("08_real_browser",)
    redis = doctor.check_redis("simkit-no-such-redis-server")
    assert not redis.ok and not redis.required and "redis-server" in redis.fix
    findings = [doctor.check_python(), doctor.check_packages(["pandas"]), chromium, redis]
    assert doctor.ready(findings)
    text = doctor.report(findings)
    assert "08_real_browser" in text and "will not run: needs Chromium" in text
    assert "01_the_reload_bug            runs" in text
    assert "exit 0" in text


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable standing in for Python: what the live check runs as its child."""
    path = tmp_path / "python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_stuck_live_run_is_killed_at_its_bound(tmp_path: Path) -> None:
    stuck = fake_python(tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 60")
    start = time.monotonic()
    found = doctor.check_live(timeout=1.0, python=stuck)
    assert time.monotonic() - start < 10
    assert not found.ok and found.required and "within 1 s" in found.detail
    assert 'runtime="virtual"' in found.fix
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):  # the child is gone, not left running
        os.kill(pid, 0)


def test_a_failing_live_run_reports_its_last_error_line(tmp_path: Path) -> None:
    failing = fake_python(tmp_path, "echo 'OSError: [Errno 98] address already in use' >&2; exit 1")
    found = doctor.check_live(timeout=10, python=failing)
    assert not found.ok and "address already in use" in found.detail
    assert "00_start_here" in found.notebooks


def test_exit_code_and_notebook_verdicts(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    healthy = [
        Finding("python", True, "Python 3.11"),
        Finding("packages", True, "found"),
        Finding("ports", True, "free"),
        Finding("live", True, "took 3 s"),
        Finding("chromium", True, "found", required=False),
    ]
    monkeypatch.setattr(doctor, "check", lambda **_: healthy)
    assert doctor.main([]) == 0
    assert "the lessons can run here (exit 0)" in capsys.readouterr().out

    broken_live = [*healthy[:3], Finding("live", False, "failed", "fix it")]
    monkeypatch.setattr(doctor, "check", lambda **_: broken_live)
    assert doctor.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL  live" in out and "fix: fix it" in out
    assert "00_start_here                live cells will fail: use their fallback" in out
    assert "03_liveness                  live cells will fail" in out
    assert "04_page_lifecycle            runs" in out

    no_pandas = [Finding("packages", False, "missing: pandas", doctor.INSTALL)]
    monkeypatch.setattr(doctor, "check", lambda **_: no_pandas)
    assert doctor.main([]) == 1
    assert "will not run: fix packages first" in capsys.readouterr().out


def test_no_live_skips_the_run_and_bad_timeouts_are_refused(capsys) -> None:
    findings = doctor.check(live=False)
    live = next(f for f in findings if f.name == "live")
    assert live.skipped and not live.required
    with pytest.raises(SystemExit):
        doctor.main(["--timeout", "0"])
    assert "--timeout must be a positive number" in capsys.readouterr().err


@pytest.mark.live
def test_the_real_live_run_passes_here() -> None:
    found = doctor.check_live()
    assert found.ok, (found.detail, found.fix)
    assert "connections" in found.detail and "every invariant held" in found.detail


def test_the_course_install_gives_what_the_doctor_checks_and_no_dev_toolchain() -> None:
    """``make course`` installs the runtime dependencies and the ``course`` extra: every
    package the doctor requires comes from them, and no development tool does."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[<>=!~ \[]", s.strip(), maxsplit=1)[0].lower() for s in specs}

    course = names(project["optional-dependencies"]["course"])
    assert course == {"jupyterlab", "ipykernel", "ipywidgets"}
    lean = names(project["dependencies"]) | course
    assert set(doctor.PACKAGES) <= lean, set(doctor.PACKAGES) - lean
    for tool in ("ruff", "mypy", "pytest", "hypothesis", "playwright", "nbval", "jupytext"):
        assert tool not in lean, tool
    makefile = (root / "Makefile").read_text()
    assert '-e ".[course]"' in makefile and "--allow-root" in makefile
