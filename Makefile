# The README's two commands: `make lab` (set up, build the tiny preset if missing, run the lab) and `make test`.
# Each is `python -m lab3 lab|test`, which needs no make (lab3/setup.py).
PY ?= python3
PRESET ?= tiny

.PHONY: lab test setup

lab:
	$(PY) -m lab3 lab --preset $(PRESET)

test:
	$(PY) -m lab3 test

setup:
	$(PY) -m lab3
