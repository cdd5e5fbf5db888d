#!/usr/bin/env bash
# Write the autograder zip to upload to Gradescope: the lab's committed files, with setup.sh and run_autograder at its
# top, where Gradescope looks for them, and the course file if one is given (grading/course.py).
#   bash grading/gradescope/make_zip.sh [OUT.zip] [COURSE.json]
set -euo pipefail
out=$(realpath "${1:-autograder.zip}")
course=$(realpath "${2:-/nonexistent}" 2>/dev/null || true)  # before the cd: relative to where it was named
cd "$(dirname "$0")/../.."
python3 - "$out" "$course" <<'PY'
import os, subprocess, sys, zipfile
files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for name in files:
        z.write(name)
    for name in ("setup.sh", "run_autograder"):
        z.write(f"grading/gradescope/{name}", name)
    if os.path.isfile(sys.argv[2]):
        z.write(sys.argv[2], "course.json")
PY
echo "wrote $out"
