"""The lab's machinery, out of the student's way: set-up, settings, speed-ups, checkpoints, results.

Importing the package imports nothing heavy: `lab3.setup` runs before the lab's packages are installed, and the
grader reads `lab3.settings` without torch.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the lab's folder: settings and results name its files relative to it
NOTEBOOK = "lab3_rlhf_detox.ipynb"  # the lab, in ROOT
