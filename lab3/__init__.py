"""The lab's machinery, out of the student's way: set-up, settings, speed-ups, checkpoints, results.

Importing the package imports nothing heavy: `lab3.setup` runs before the lab's packages are installed, and the
grader reads `lab3.settings` without torch.
"""
