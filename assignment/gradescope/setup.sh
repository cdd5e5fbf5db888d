#!/usr/bin/env bash
# Gradescope runs this once when it builds the assignment's autograder image (python -m assignment.build): the lab's
# pinned packages and otter-grader, with pip (no conda), from the grader's files in the zip.
set -euo pipefail
cd /autograder/source/lab
python3 -m lab3  # the pinned packages (the tests' too, otter among them); the tiny preset is shipped
