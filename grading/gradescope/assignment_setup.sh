#!/usr/bin/env bash
# The assignment's autograder image (python -m grading.assign): Gradescope runs this once. The lab's pinned packages and
# otter-grader with pip (no conda), from the lab's files in the zip.
set -euo pipefail
cd /autograder/source/files
python3 -m lab3  # the pinned packages; the tiny preset is shipped, and built only if missing
python3 -m pip install --quiet otter-grader==7.0.0
