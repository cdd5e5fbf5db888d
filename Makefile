# The README's two commands: `make lab` (set up, build the tiny preset if missing, run the lab) and `make test`;
# `make assign` builds the assignment (dist/student, dist/autograder).
# Each is `python -m lab3 lab|test`, which needs no make (lab3/__main__.py).
PY ?= python3
PRESET ?= tiny

.PHONY: lab test setup assign

lab:
	$(PY) -m lab3 lab --preset $(PRESET)

test:
	$(PY) -m lab3 test

setup:
	$(PY) -m lab3

assign:
	$(PY) -m lab3 && $(PY) -m grading.assignment.build dist
