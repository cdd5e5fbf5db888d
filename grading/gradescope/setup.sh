#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image: the lab's pinned packages, so that the grader can
# re-score every submission with the reward classifier. The lab's checkout is the autograder's source folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for lab in "${LAB_DIR:-}" "$here" "$here/../.." /autograder/source; do [ -f "$lab/grader.py" ] && break; done
cd "$lab"
python3 -m lab_setup  # the pinned packages; the tiny preset is shipped, and built only if missing
# The full preset's classifier, for re-scoring full-preset runs (the image can reach the Hub while it is built).
python3 -c "import huggingface_hub as h; h.snapshot_download('facebook/roberta-hate-speech-dynabench-r4-target')" \
  || echo "setup: the full preset's classifier could not be cached: re-scoring full-preset runs will be NOT RUN"
