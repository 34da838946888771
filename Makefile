# Two entry points a newcomer needs: `make reproduce` and `make test`.
# Each creates .venv on first use and installs what it needs.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
SCD_DATA_DIR ?= $(CURDIR)/../shared/data
PROFILE ?= cpu
export SCD_DATA_DIR

.PHONY: venv reproduce test summary clean

$(BIN)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (Python 3.11) on PATH, or run: make PY=/path/to/python3.11"; exit 2; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[notebooks,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name scd --display-name "Python (scd)" >/dev/null
	touch $@

venv: $(BIN)/.installed

## reproduce: regenerate the results on the $(PROFILE) profile
reproduce: venv
	$(BIN)/python -m scd reproduce --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS))

## test: the whole test suite (what CI runs)
test: venv
	$(BIN)/python -m pytest -q tests notebooks --nbval-lax; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

summary: venv
	$(BIN)/python -m scd data-summary

clean:
	rm -rf runs .pytest_cache

## bench: distillation cost table (cpu profile, one task) -> results/benchmarks/
bench: venv
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_distill.py --profile $(PROFILE) --task $(or $(TASK),crade)
