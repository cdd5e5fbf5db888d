"""Where a run's models and data come from: a folder of the lab, the Hugging Face cache, or the Hub; and whether the
tiny preset's files are the shipped ones. Checked once the settings are known, before anything loads."""

from pathlib import Path

from lab3.checksums import MANIFEST, manifest_mismatches
from lab3.errors import LabError
from lab3.settings import SOURCE_KEYS, TINY_DIR, Settings


def hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hugging Face Hub answers within `timeout` seconds."""
    from urllib.request import urlopen

    from huggingface_hub import constants
    try:
        urlopen(constants.ENDPOINT, timeout=timeout).close()
        return True
    except OSError:
        return False


def check(cfg: Settings) -> None:
    """Fail fast, in one sentence, when a model or data set of `cfg` is neither local, cached nor downloadable, or a
    file of the tiny preset is not the shipped one."""
    from huggingface_hub import constants, try_to_load_from_cache
    hub_ids = [getattr(cfg, k) for k in ("model_name", "toxicity_model_name") if not Path(getattr(cfg, k)).is_dir()]
    missing = [repo for repo in hub_ids if not isinstance(try_to_load_from_cache(repo, "config.json"), str)]
    if not Path(cfg.dataset_name).is_dir() and not constants.HF_HUB_OFFLINE:
        missing.append(cfg.dataset_name)
    check_tiny_files(cfg)
    if not missing:
        return
    why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else None
    if why is None and not hub_reachable():
        why = f"the Hugging Face Hub ({constants.ENDPOINT}) is unreachable"
    if why:
        raise LabError(f"{', '.join(missing)} cannot be loaded: {why} and they are not in the Hugging Face cache; "
                       "run the tiny preset (`make lab`), or fill the cache on a machine that reaches the Hub.")


def check_tiny_files(cfg: Settings, folder: Path = TINY_DIR) -> None:
    """Fail in one sentence when `cfg` reads the tiny preset's files and one of them is not the shipped one."""
    if not any(Path(getattr(cfg, k)).is_relative_to(folder) for k in SOURCE_KEYS):
        return
    how = ("restore the shipped files with `git checkout -- checkpoints/tiny`, or rebuild them with "
           "`python -m tiny_world.build`")
    if not (folder / MANIFEST).is_file():
        raise LabError(f"The tiny preset has no {MANIFEST} in {folder}: {how}.")
    wrong = manifest_mismatches(folder)
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        raise LabError(f"{folder / wrong[0]}{more} is not the tiny preset's file (it is missing, or its "
                       f"SHA-256 differs from {folder / MANIFEST}): {how}.")
