"""Grading Lab 3: `python -m grading` (see `grading/__main__.py`), and the Gradescope autograder in `gradescope/`."""
