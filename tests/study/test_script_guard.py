"""A sweep from a plain script: Dask's workers are fresh Pythons that re-run the script's top
level, so an unguarded script is one clear ConfigError naming the guard (it was four
multiprocessing tracebacks and "Nanny failed to start"); a guarded script, a notebook, and
``python -m simkit sweep`` play as before.

Each script runs in its own Python, bounded by a timeout; the unguarded ones are refused
before any worker starts, so they are quick.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simkit.study.cluster import unguarded_call

ROOT = Path(__file__).resolve().parents[2]

# The README's snippet, small: what a user pastes into a file and runs.
SNIPPET = """\
import simkit

study = simkit.sweep("reload-storm", "before", grid={"heartbeat": [10]}, seeds=1, tabs=10,
                     duration=10, workers=1, progress=False)
print("rows", len(study.runs))
"""


def play(
    tmp_path: Path, source: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    script = tmp_path / "study.py"
    script.write_text(textwrap.dedent(source), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, *(args or [str(script)])]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_an_unguarded_script_is_one_clear_config_error(tmp_path):
    done = play(tmp_path, SNIPPET, timeout=60)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("simkit.model.errors.ConfigError: a sweep's Dask workers cannot start")
    assert f"{tmp_path / 'study.py'} (line 3)" in last
    assert 'Put the script\'s code under `if __name__ == "__main__":`' in last
    for noise in ("Nanny failed to start", "bootstrapping phase", "multiprocessing"):
        assert noise not in done.stderr
    assert done.stderr.count("Traceback") == 1  # the user's own, ending in the one line


def test_an_unguarded_call_of_main_is_refused_and_local_cluster_too(tmp_path):
    done = play(
        tmp_path,
        """\
        from simkit.study import local_cluster


        def main():
            with local_cluster(1):
                pass


        main()
        """,
        timeout=60,
    )
    assert done.returncode == 1
    assert "study.py (line 9)" in done.stderr.strip().splitlines()[-1]
    assert "Nanny failed to start" not in done.stderr


@pytest.mark.slow
def test_a_guarded_script_plays(tmp_path):
    guarded = "def main():\n" + textwrap.indent(SNIPPET, "    ")
    guarded += '\n\nif __name__ == "__main__":\n    main()\n'
    done = play(tmp_path, guarded)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rows 1"
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_python_dash_m_simkit_sweep_plays(tmp_path):
    done = play(
        tmp_path,
        "",
        *("-m", "simkit", "sweep", "--strategies=before", "--seeds=1", "--tabs=10"),
        *("--duration=10", "--workers=1", f"--out={tmp_path / 'out'}"),
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "runs.csv").exists()


@pytest.mark.parametrize(
    ("source", "line", "guarded"),
    [
        ('if __name__ == "__main__":\n    x = 1\n', 2, True),
        ('if "__main__" == __name__:\n    x = 1\n', 2, True),
        ('x = 1\nif __name__ == "__main__":\n    y = 2\n', 1, False),
        ('if __name__ != "__main__":\n    x = 1\n', 2, False),
        ('if __name__ == "__main__":\n    x = 1\nelse:\n    y = 2\n', 4, False),
    ],
)
def test_the_guard_is_read_from_the_script(source, line, guarded):
    """The check itself, on scripts it parses: only the body of the guard counts."""
    from simkit.study import cluster

    assert cluster.under_main_guard(ast.parse(source), line) is guarded


def test_no_script_no_check():
    """Under pytest, ``__main__`` is pytest's: no frame of this test is its top level."""
    assert unguarded_call(sys._getframe()) is None
