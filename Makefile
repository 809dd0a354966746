# Each target sets up .venv when missing (or when pyproject.toml changed), then does its job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lab course bench soak lint clean browser redis

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

test: $(STAMP) browser redis
	$(PY) -m ruff check simkit tests benchmarks examples
	$(PY) -m mypy
	@# CPU-only tests on every core; tests that measure real time (live, browser) one at a time
	$(PY) -m pytest --durations=10 -n auto -m "not live and not browser"
	$(PY) -m pytest --durations=25 -m "live or browser"
	$(PY) -m pytest --durations=12 --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg --nbval-current-env

# The loop while developing: every test that needs neither real time, a browser nor
# notebooks (markers set in tests/conftest.py), in well under a minute; prints its wall time.
FAST := not live and not browser and not slow and not notebooks
test-fast: $(STAMP)
	@start=$$(date +%s%N); status=0; \
	$(PY) -m pytest -q -m "$(FAST)" || status=$$?; \
	ms=$$(( ($$(date +%s%N) - start) / 1000000 )); \
	echo "make test-fast: $$((ms / 1000)).$$(printf %03d $$((ms % 1000))) s wall (make test runs everything)"; \
	exit $$status

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
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
