"""The lab's one error class: a problem a student or an instructor can fix, told in one sentence."""


class LabError(Exception):
    """A problem with the lab's set-up or inputs, shown in a notebook as its one-sentence message, no traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]
