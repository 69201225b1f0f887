# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO := demo
CORES ?= 2

.PHONY: demo test lint dryrun clean-demo

$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet --require-hashes -r requirements.lock
	$(VPY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

## demo: install, make a synthetic NIRSpec MOS + FS + MIRI LRS program, run the workflow on it
demo: $(INSTALLED)
	$(VPY) -m spec3flow.synth --mode all --outdir $(DEMO)/input --n-sources 8 --seed 42
	$(VENV)/bin/snakemake --profile workflow/profiles/default --cores $(CORES) \
	    --configfile config/demo.yaml
	$(VENV)/bin/snakemake --profile workflow/profiles/default --cores $(CORES) \
	    --configfile config/demo.yaml --report $(DEMO)/results/report.html
	@$(VPY) -m spec3flow.run_summary $(DEMO)/results

## test: install the same environment and run the test suite
test: $(INSTALLED)
	$(VPY) -m pytest -ra

lint: $(INSTALLED)
	$(VENV)/bin/snakemake --lint --configfile config/demo.yaml

clean-demo:
	rm -rf $(DEMO)
