# The README's two commands: `make lab` (set up, build the tiny preset if missing, run the lab) and `make test`.
# Each is `python -m lab_setup lab|test`, which needs no make (lab_setup.py).
PY ?= python3
PRESET ?= tiny

.PHONY: lab test setup

lab:
	$(PY) -m lab_setup lab --preset $(PRESET)

test:
	$(PY) -m lab_setup test

setup:
	$(PY) -m lab_setup
