#!/usr/bin/env bash
# Write the autograder zip to upload to Gradescope: the lab's committed files, with setup.sh and run_autograder at its
# top, where Gradescope looks for them.   bash grading/gradescope/make_zip.sh [OUT.zip]
set -euo pipefail
out=$(realpath "${1:-autograder.zip}")
cd "$(dirname "$0")/../.."
python3 - "$out" <<'PY'
import subprocess, sys, zipfile
files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name in files:
        z.write(name)
    for name in ("setup.sh", "run_autograder"):
        z.write(f"grading/gradescope/{name}", name)
PY
echo "wrote $out"
