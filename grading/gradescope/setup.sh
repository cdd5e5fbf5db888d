#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder's image (python -m grading.autograder_zip, or
# python -m grading.assignment.build): bubblewrap (the sandbox, where the container allows namespaces; Gradescope's does not,
# and the sandbox then runs without them), the lab's pinned packages with pip (otter-grader among the tests'), and
# where students hand in runs, the full preset's classifier at a pinned revision so that the grader can re-score
# every submission. CLASSIFIER_REVISION: the Hub commit to pin (set it to a commit hash; "main" pins whatever main is
# when the image is built, and grading/classifier.lock records which).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
apt-get install -y -qq bubblewrap >/dev/null 2>&1 || echo "bubblewrap not installed: the sandbox runs without namespaces"
hand_in=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("hand_in", "run"))' \
  "$here/course.json" 2>/dev/null || echo run)
cd "$here/lab"
python3 -m lab3  # the pinned packages; the tiny preset is shipped
[ "$hand_in" = run ] || exit 0
# Only the weights as safetensors, the config and the tokenizer: nothing pickled, no code.
python3 - <<'PY' || echo "setup: the full preset's classifier could not be cached: re-scoring full-preset runs will be NOT RUN"
import json, os
from huggingface_hub import snapshot_download
from lab3.checksums import file_sha256
from lab3.settings import PRESETS
repo = PRESETS["full"]["toxicity_model_name"]
folder = snapshot_download(repo, revision=os.environ.get("CLASSIFIER_REVISION", "main"),
                           allow_patterns=["*.safetensors", "*.json", "*.txt"])
pin = {"repo": repo, "revision": os.path.basename(folder), "folder": folder,
       "sha256": file_sha256(os.path.join(folder, "model.safetensors"))}
open("grading/classifier.lock", "w").write(json.dumps(pin) + "\n")
print(f"setup: pinned {repo} at {pin['revision']} (model.safetensors SHA-256 {pin['sha256'][:12]}...)")
PY
