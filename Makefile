# Each target sets up .venv when missing (or when pyproject.toml changed), then does its job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lab course bench soak lint clean browser redis frontend

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m simkit demo --out demo-output

# Real-browser tests need Debian's Chromium: installed here when missing and we can (root
# with apt); otherwise they are skipped with the reason (CI sets SIMKIT_REQUIRE_BROWSER).
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (Debian package) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and not installable here: browser tests will be skipped"; fi; }

# Several-node tests need Debian's redis-server: installed the same way when missing.
redis:
	@command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing redis-server (Debian package) for the several-node tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "redis-server missing and not installable here: redis tests will be skipped"; fi; }

# The example front end's tests need Node.js and npm: Debian's nodejs and npm when missing
# (root with apt, as above), then `npm ci` in the example, again only when its lock file is
# newer than the stamp left in node_modules (a second `make test` does not reinstall).
FRONTEND := examples/postmortem_frontend
FRONTEND_STAMP := $(FRONTEND)/node_modules/.simkit-installed

frontend:
	@{ command -v node >/dev/null && command -v npm >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing nodejs and npm (Debian packages) for the front-end tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	  else echo "node or npm missing and not installable here: front-end tests will be skipped"; fi; }
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(FRONTEND_STAMP); fi

$(FRONTEND_STAMP): $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && NEXT_TELEMETRY_DISABLED=1 npm ci --no-audit --no-fund
	touch $@

test: $(STAMP) browser redis frontend
	$(PY) -m ruff check simkit tests benchmarks examples
	@# Two jobs side by side, each printed whole when it ends. What plays in real time, at
	@# normal priority; what only needs CPU (types, CPU-only tests, virtual notebooks, the
	@# Next.js tests, which wait on Node), at the lowest priority (nice 19): it takes the
	@# cores the real-time tests leave idle and yields them the moment those need them.
	$(MAKE) --no-print-directory -j2 --output-sync=target test-realtime test-cpu-bound

# make test's parts (each also runs on its own: `make test-realtime`).
.PHONY: test-realtime test-cpu-bound
test-realtime: $(STAMP)
	@# The live and browser tests that tolerate a neighbour, two at a time; then the ones
	@# marked `alone` (tests/conftest.py), the post-mortem's front end against the model (real
	@# Chromium on the real Next.js app, in a pytest process of its own) and the notebooks
	@# that play in real time, one at a time.
	$(PY) -m pytest --durations=15 -n 2 -m "(live or browser) and not alone and not node"
	$(PY) -m pytest --durations=15 -m "(live or browser) and alone and not node"
	$(PY) -m pytest --durations=5 $(FRONTEND_MODEL_TESTS)
	$(PY) -m pytest --durations=12 $(NBVAL) $(LIVE_NOTEBOOKS)

test-cpu-bound: $(STAMP)
	nice -n 19 $(MAKE) --no-print-directory -j1 test-types test-cpu test-notebooks-virtual test-node

NBVAL := --nbval --nbval-sanitize-with notebooks/sanitize.cfg --nbval-current-env
# The notebooks with cells that play in real time (a live server, Chromium, Next.js): one
# at a time. Every other notebook (a new one too, until it is listed here) runs two at a time.
# (05 starts a real server too, but asserts no timing: it runs with the virtual ones.)
LIVE_NOTEBOOKS := $(addprefix notebooks/,00_start_here.ipynb 03_liveness.ipynb \
	06_restart_and_herds.ipynb 08_real_browser.ipynb \
	09_your_own_server.ipynb 11_the_postmortem_end_to_end.ipynb)
# The longest first (exercise 3 grades its stub answer: about 30 s), so that it is not the
# last one handed out while the other worker idles.
VIRTUAL_NOTEBOOKS := notebooks/exercises/ex3_tame_the_herd.ipynb \
	$(filter-out $(LIVE_NOTEBOOKS),$(wildcard notebooks/*.ipynb)) \
	$(filter-out %/ex3_tame_the_herd.ipynb,$(wildcard notebooks/exercises/*.ipynb))
NODE_TESTS := tests/net/test_nextapp.py tests/net/test_nextproxy_measure.py
FRONTEND_MODEL_TESTS := tests/browser/test_postmortem_frontend_model.py
.PHONY: test-types test-cpu test-notebooks-virtual test-node
test-types: $(STAMP)
	$(PY) -m mypy
test-cpu: $(STAMP)
	@# (the slow ones handed out first: tests/conftest.py)
	$(PY) -m pytest --durations=10 -n auto -m "not live and not browser"
test-notebooks-virtual: $(STAMP)
	@# two at a time, the longest first
	$(PY) -m pytest --durations=5 -n 2 --dist loadfile $(NBVAL) $(VIRTUAL_NOTEBOOKS)
test-node: $(STAMP) frontend
	$(PY) -m pytest --durations=5 -m node $(NODE_TESTS)

# The loop while developing: every test that needs neither real time, a browser nor
# notebooks (markers set in tests/conftest.py), in well under a minute; prints its wall time.
FAST := not live and not browser and not slow and not notebooks
test-fast: $(STAMP)
	@start=$$(date +%s%N); status=0; \
	$(PY) -m pytest -q -n auto -m "$(FAST)" || status=$$?; \
	ms=$$(( ($$(date +%s%N) - start) / 1000000 )); \
	echo "make test-fast: $$((ms / 1000)).$$(printf %03d $$((ms % 1000))) s wall (make test runs everything)"; \
	exit $$status

# The CPU-only tests (notebooks aside) on another CPython X.Y (`make test-python-3.13`), in
# its own venv .venv-X.Y: the virtual loop relies on asyncio internals
# (simkit/virtual/compat.py), so every Python that requires-python admits is tested, and
# one it does not admit yet can be tried (hence --ignore-requires-python). The interpreter
# is pythonX.Y on the PATH or the newest pyenv X.Y.*; missing, the target fails and says so.
.venv-%/.installed: pyproject.toml
	@py=; for candidate in python$* $$(ls -d $$HOME/.pyenv/versions/$*.*/bin/python$* 2>/dev/null); do \
	  $$candidate -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$*'.split('.')))" \
	    2>/dev/null && py=$$candidate; done; \
	test -n "$$py" || { echo "no CPython $* here (python$* on the PATH or ~/.pyenv/versions/$*.*)"; exit 1; }; \
	echo "CPython $* is $$py"; \
	test -x .venv-$*/bin/python || $$py -m venv .venv-$*
	@# setuptools: a test builds the wheel, and venv stopped bringing it with Python 3.12
	.venv-$*/bin/python -m pip install --quiet --upgrade pip setuptools
	.venv-$*/bin/python -m pip install --quiet --ignore-requires-python -e ".[dev,bench]"
	touch $@

test-python-%: .venv-%/.installed
	.venv-$*/bin/python -m pytest -n auto -m "not live and not browser and not notebooks"


# The attendee's install: the kit and JupyterLab only (the `course` extra), no development
# toolchain; then the pre-flight check (python -m simkit doctor), which says what this
# machine can run and fails the target when the lessons cannot.
COURSE_STAMP := $(VENV)/.course
$(COURSE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[course]"
	touch $(COURSE_STAMP)

course: $(COURSE_STAMP)
	$(PY) -m simkit.doctor
	@echo "installed; open the lessons with: make lab"

# JupyterLab refuses to start as root without --allow-root (as in many containers).
lab: $(COURSE_STAMP)
	$(VENV)/bin/jupyter lab notebooks $$(test "$$(id -u)" = 0 && echo --allow-root)

# Benchmarks and the soak test live in the source checkout's benchmarks/ package, not in
# the wheel; bench-quick is the development run (written to benchmarks/results/quick.json).
.PHONY: bench-quick
bench: $(STAMP)
	$(PY) -m benchmarks

bench-quick: $(STAMP)
	$(PY) -m benchmarks --quick

soak: $(STAMP)
	$(PY) -m benchmarks.soak

lint: $(STAMP)
	$(PY) -m ruff check simkit tests benchmarks examples
	$(PY) -m ruff format --check simkit tests benchmarks examples

clean:
	rm -rf $(VENV) .venv-*/ demo-output .pytest_cache .hypothesis
