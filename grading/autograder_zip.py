"""Gradescope's autograder, one zip for both ways of grading, its mode the course file's `hand_in`:

    python -m grading.autograder_zip OUT.zip [COURSE.json]   # runs handed in (hand_in "run", the default)
    python -m grading.assignment.build dist [COURSE.json]    # the assignment's notebooks (hand_in "notebook")

The zip holds `setup.sh` and `run_autograder` (grading/gradescope/) at its top, where Gradescope looks for them, the
lab's files in lab/, the course file as course.json, and for the assignment the student's folder in student/.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from grading.course import CourseError, course
from lab3 import ROOT

GRADESCOPE = Path(__file__).resolve().parent / "gradescope"


def tracked(*prefixes: str) -> list[str]:
    """The files under `prefixes` that git does not ignore (no run, output or checkpoint of PPO)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *prefixes],
                            cwd=ROOT, capture_output=True, check=True).stdout
    return sorted(n for n in set(listed.decode().split("\0")) if n and (ROOT / n).is_file())


def build(zip_path: Path, course_file: dict, student: Path | None = None) -> Path:
    """Write the autograder zip for `course_file` (a course file's JSON object, its `hand_in` set), with the student's
    folder `student` where students hand in the assignment's notebook."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for script in ("setup.sh", "run_autograder"):
            info = zipfile.ZipInfo(script)
            info.external_attr = 0o755 << 16
            z.writestr(info, (GRADESCOPE / script).read_bytes(), zipfile.ZIP_DEFLATED)
        for name in tracked():
            z.write(ROOT / name, f"lab/{name}")
        for path in sorted(student.rglob("*")) if student else []:
            if path.is_file():
                z.write(path, f"student/{path.relative_to(student).as_posix()}")
        z.writestr("course.json", json.dumps(course_file, indent=1) + "\n")
    return zip_path


def main(argv: list[str]) -> int:
    """`python -m grading.autograder_zip OUT.zip [COURSE.json]`."""
    if not 1 <= len(argv) <= 2:
        print(__doc__)
        return 2
    course_file = json.loads(Path(argv[1]).read_text()) if len(argv) == 2 else {}
    try:
        course(Path(argv[1]) if len(argv) == 2 else None)
    except CourseError as e:
        print(f"autograder_zip: {e}")
        return 2
    if course_file.get("hand_in", "run") == "notebook":
        print("autograder_zip: the assignment's zip holds the student's folder: build it with "
              "`python -m grading.assignment.build dist COURSE.json` (make assign)")
        return 2
    build(Path(argv[0]), dict(course_file, hand_in="run"))
    print(f"wrote {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
