# nanoedge.core — developer and CI entry points.
#   make test   sanity + units + lint + integration, against real components
#   make demo   the demo cluster (comes with the deploy issue)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# The controller Pythons of the pinned ansible-core (2.19); CI tests 3.11, Debian 12's.
CONTROLLER_PYTHONS := 3.11 3.12 3.13
PYTHON_VERSION = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test runs on the venv's Python (known once the venv exists).
PYVER = $(shell $(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
BUILD := $(CURDIR)/.build
ANSIBLE_BUNDLE := 12.3.0
COLLECTIONS := $(BUILD)/collections
COLL_DEST ?= $(COLLECTIONS)/ansible_collections/nanoedge/core
SANITY_ARGS ?=
UNITS_ARGS ?=
PYTEST_ARGS ?=
CONTINUITY_ARGS ?=
# antsibull-docs lint-collection-docs options; --plugin-docs also checks every plugin's and role's docs.
DOCS_LINT_ARGS ?= --plugin-docs
# The collections unpacked from the bundle: the dependencies galaxy.yml declares (community.docker
# needs community.library_inventory_filtering_v1) and community.general. The stamp counts them, so a
# checkout unpacked before a collection was added unpacks again.
DEP_COLLECTIONS := community.docker community.library_inventory_filtering_v1 ansible.posix community.general
DEPS_STAMP := $(COLLECTIONS)/.deps-$(ANSIBLE_BUNDLE)-$(words $(DEP_COLLECTIONS))
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

.PHONY: help test sanity units lint integration prereqs python-check venv collections layout changelog changelog-build \
	demo bench continuity clean \
	testbed-up testbed-down testbed-status images molecule

help:
	@echo "make test   run every test (sanity, units, lint, integration)"
	@echo "make demo   bring up the demo cluster and deploy the scenario"
	@echo "make bench  run the benchmarks in bench/"
	@echo "make changelog  write CHANGELOG.rst for galaxy.yml's version from the fragments (which stay)"
	@echo "make docs   build the HTML docs site in build/docs/html (plugins, roles, user guide)"
	@echo "make continuity  time what the patient sees on the running demo cluster (after make demo)"
	@echo "make testbed-up | testbed-down | testbed-status | images"
	@echo "make ee     build the execution environment (ansible-builder, Docker) as $(EE_IMAGE)"

python-check:
	@case " $(CONTROLLER_PYTHONS) " in *" $(PYTHON_VERSION) "*) ;; \
		*) echo "need one of Python $(CONTROLLER_PYTHONS) on the controller (PYTHON=$(PYTHON) is $(PYTHON_VERSION))" >&2; exit 1;; esac

venv: $(BIN)/.stamp
$(BIN)/.stamp: requirements-dev.txt
	@$(MAKE) -s --no-print-directory python-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The collections of DEP_COLLECTIONS from the PyPI
# "ansible" bundle (Galaxy is not reachable from every edge site or CI).
collections: $(DEPS_STAMP)
$(DEPS_STAMP): | venv
	rm -rf $(BUILD)/bundle && mkdir -p $(BUILD)/bundle $(COLLECTIONS)/ansible_collections
	$(BIN)/pip download -q --disable-pip-version-check --no-deps -d $(BUILD)/bundle ansible==$(ANSIBLE_BUNDLE)
	$(BIN)/python tools/unpack_collections.py $(BUILD)/bundle/ansible-$(ANSIBLE_BUNDLE)-*.whl \
		$(COLLECTIONS)/ansible_collections $(DEP_COLLECTIONS)
	rm -rf $(BUILD)/bundle
	touch $@

# ansible-test needs the checkout at ansible_collections/nanoedge/core.
layout: collections
	$(BIN)/python tools/layout.py $(COLL_DEST)

prereqs:
	bash tools/prereqs.sh

sanity: layout
	bash tools/ansible_test_offline.sh $(BIN)/python
	cd $(COLL_DEST) && ansible-test sanity --venv --python $(PYVER) --color no $(SANITY_ARGS)

units: layout
	cd $(COLL_DEST) && ansible-test units --local --python $(PYVER) --color no $(UNITS_ARGS)

# ansible-lint, the docs lint and the changelog's (its fragments, and the release notes they make).
lint: layout changelog-build
	cd $(COLL_DEST) && ansible-lint --offline --profile production
	cd $(COLL_DEST) && antsibull-docs lint-collection-docs $(DOCS_LINT_ARGS) .

# The release notes of galaxy.yml's version as `antsibull-changelog release` writes them, made in a
# copy so that the fragments stay until the release is cut; make changelog puts them in CHANGELOG.rst.
CHANGELOG_COPY := $(BUILD)/changelog/ansible_collections/nanoedge/core
changelog-build: collections
	$(BIN)/python tools/layout.py $(CHANGELOG_COPY)
	cd $(CHANGELOG_COPY) && antsibull-changelog lint && antsibull-changelog release
changelog: changelog-build
	cp $(CHANGELOG_COPY)/CHANGELOG.rst CHANGELOG.rst

# The docs site, build/docs/html/index.html: antsibull-docs' page of every plugin and role as ansible-doc
# reads it from the layout copy, and the guides of docs/ (MyST); any Sphinx warning fails it.
.PHONY: docs
docs: layout
	$(BIN)/python tools/docs_site.py $(COLL_DEST) $(CURDIR)/build/docs

integration: layout prereqs
	cd $(COLL_DEST) && $(BIN)/python -m pytest -p no:cacheprovider tests/integration -v $(PYTEST_ARGS); \
		rc=$$?; if [ $$rc -eq 5 ]; then echo "integration: no tests collected"; exit 0; fi; exit $$rc

# The molecule scenarios (extensions/molecule) run site.yml on the demo cluster, in groups sharing one cluster.
molecule: venv
	bash tools/molecule.sh

test: sanity units lint integration molecule

bench: layout
	bash tools/prereqs.sh --bench
	cd $(COLL_DEST) && for b in bench/*.py; do [ "$$b" = bench/bench_continuity.py ] && continue; \
		echo "== $$b"; $(BIN)/python "$$b"; done

# Continuity of care on the demo cluster as make demo left it (dynamic mode): one row per event,
# build/continuity/report.json. Options: CONTINUITY_ARGS="--events worker_killed --runs 3 --skip-swarm".
continuity: venv
	$(BIN)/python bench/bench_continuity.py --report build/continuity/report.json $(CONTINUITY_ARGS)

# The demo cluster: managers m1, m2 and workers w1-w5 as containers with fake Pi hardware.
testbed-up: venv prereqs
	$(BIN)/python tools/testbed.py up
testbed-down: venv
	$(BIN)/python tools/testbed.py down
testbed-status: venv
	$(BIN)/python tools/testbed.py status
# The example nanoservices, built from the base image and pushed to the registry.
images: venv prereqs
	$(BIN)/python tools/nanoservices.py

# The execution environment (meta/execution-environment.yml), built with ansible-builder and Docker on the
# local base image, from a context tools/ee.py completes first (collection tarballs, wheels: no Galaxy here).
EE_IMAGE ?= nanoedge/ee:$(shell sed -n 's/^version: *//p' galaxy.yml)
.PHONY: ee
ee: layout prereqs
	$(BIN)/python tools/ee.py --collection $(COLL_DEST) --collections $(COLLECTIONS) --work $(BUILD)/ee --tag $(EE_IMAGE)

demo:
	bash tools/demo.sh

clean:
	rm -rf $(VENV) $(BUILD)
