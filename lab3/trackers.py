"""The trackers PPO logs to (`tracker="tensorboard"` or `"trackio"`), handed to TRL ready-made: TRL 0.11.4 gives a
tracker its whole config, with None, lists and objects that TensorBoard's hparams and Trackio's config refuse, so
these take it flattened to numbers, texts and flags."""

import os
from pathlib import Path

from accelerate.tracking import TensorBoardTracker, TrackioTracker


def hparams(values: dict, prefix: str = "") -> dict:
    """`values` flattened (`a/b` for nested keys), each value a number, a text or a flag."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(hparams(value, f"{prefix}{key}/"))
        else:
            flat[prefix + key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


class TensorBoard(TensorBoardTracker):
    """Accelerate's TensorBoard tracker, given TRL's config as hyperparameters it takes."""

    def store_init_configuration(self, values: dict) -> None:
        super().store_init_configuration(hparams(values))


class Trackio(TrackioTracker):
    """Accelerate's Trackio tracker, given TRL's config as a config it takes."""

    def store_init_configuration(self, values: dict) -> None:
        super().store_init_configuration(hparams(values))


def tracker(kind: str, run_name: str, folder: Path):
    """The tracker of `kind` for the run `run_name`, writing under `folder`: a TensorBoard run folder, or a run of the
    Trackio project "lab3-detox" in the local store `folder/trackio` (TRACKIO_DIR, where it is not set already)."""
    if kind == "tensorboard":
        return TensorBoard(run_name, folder / "tensorboard")
    os.environ.setdefault("TRACKIO_DIR", str(folder / "trackio"))  # trackio reads it when first imported
    return Trackio("lab3-detox", name=run_name, resume="allow", embed=False)
