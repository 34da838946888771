# Entry points a newcomer needs: `make reproduce` (the main job) and `make test` (what CI runs).
# Each creates .venv on first use and installs what it needs. Any Python 3.11-3.13 works:
# the first of python3.11, python3.12, python3.13, python3 found, or PY=/path/to/python.
PY      ?= $(firstword $(foreach p,python3.11 python3.12 python3.13 python3,$(if $(shell command -v $(p) 2>/dev/null),$(p))))
VENV    ?= .venv
BIN     := $(VENV)/bin
# relative to the folder the command was typed in, made absolute so every process (and test) sees one path
override SCD_DATA_DIR := $(abspath $(or $(SCD_DATA_DIR),$(CURDIR)/../shared/data))
PROFILE ?= cpu
export SCD_DATA_DIR

.PHONY: venv reproduce notebooks test test-fast summary clean bench lock

# the locked versions (with hashes), then the package itself on top without touching them
$(BIN)/.installed: pyproject.toml requirements.lock
	@$(PY) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)' 2>/dev/null || \
	  { echo "need Python 3.11, 3.12 or 3.13 (found: $(PY)); run: make PY=/path/to/python3.11"; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name scd --display-name "Python (scd)" >/dev/null
	touch $@

venv: $(BIN)/.installed

## reproduce: compute every missing stage, render the notebooks, compare with the committed results
##            (writes reproduction/$(PROFILE)-seeds<S>/ only; SEEDS=0,1,2 for the committed three seeds;
##            TASKS=crade: one task, no ablations unless ABLATIONS=crade, compared with that task's committed cells)
reproduce: venv
	$(BIN)/python -m scd reproduce --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS)) \
	  $(if $(TASKS),--set tasks=$(TASKS) --ablations '$(ABLATIONS)')

## notebooks: re-render the committed notebooks from the committed results (no training)
notebooks: venv
	$(BIN)/python -m scd notebooks --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS))

## test: the whole test suite (what CI runs)
test: venv
	$(BIN)/python -m pytest -q tests notebooks --nbval-lax; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

## test-fast: the unit tests that train nothing (under two minutes; the inner loop while editing)
test-fast: venv
	$(BIN)/python -m pytest -q tests -m "not slow"

summary: venv
	$(BIN)/python -m scd data-summary

clean:
	rm -rf runs reproduction .pytest_cache

## lock: re-resolve requirements.lock (newest versions pyproject.toml allows; commit it with results made on it)
TORCH_INDEX ?= $(if $(wildcard /opt/wheels/torch-*),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
lock:
	test -x .lock-tools/bin/uv || { $(PY) -m venv .lock-tools && .lock-tools/bin/pip install -q uv; }
	.lock-tools/bin/uv pip compile pyproject.toml --extra notebooks --extra test --extra gemma --generate-hashes \
	  --python-version 3.11.7 --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple \
	  $(TORCH_INDEX) --no-header --no-annotate -o requirements.lock.new
	{ sed -n '1,3p' requirements.lock; cat requirements.lock.new; } > requirements.lock.tmp && \
	  rm requirements.lock.new && mv requirements.lock.tmp requirements.lock

## bench: distillation cost table (cpu profile, one task) -> results/benchmarks/
bench: venv
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_distill.py --profile $(PROFILE) --task $(or $(TASK),crade)
