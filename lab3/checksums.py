"""SHA-256 fingerprints: of a classifier's weights (which model scored a run) and of the tiny preset's files.

Standard library only, so that the grader stays light.
"""

import hashlib
import json
from pathlib import Path

MANIFEST = "MANIFEST.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at `path`, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_sha256s(folder: str | Path) -> dict[str, str]:
    """Each file under `folder` (its manifest and lock files aside), by path relative to `folder`, with its SHA-256."""
    folder = Path(folder)
    # `evaluate` leaves .lock files beside the classifier it is given as its config name.
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST and p.suffix != ".lock"}


def write_manifest(folder: str | Path) -> Path:
    """Write `folder`'s MANIFEST.json: the SHA-256 of each of its files."""
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(folder_sha256s(folder), indent=1) + "\n")
    return path


def manifest_mismatches(folder: str | Path) -> list[str]:
    """The files named in `folder`'s manifest that are missing or differ from it ([] when all match)."""
    folder = Path(folder)
    expected = json.loads((folder / MANIFEST).read_text())
    return [name for name, sha in expected.items()
            if not (folder / name).is_file() or file_sha256(folder / name) != sha]


def weights_file(model: str | Path) -> Path | None:
    """The weights file of `model` (a local folder, or a Hub id in the Hugging Face cache), or None."""
    if Path(model).is_dir():
        return next((Path(model) / n for n in WEIGHT_FILES if (Path(model) / n).is_file()), None)
    from huggingface_hub import try_to_load_from_cache
    for name in WEIGHT_FILES:
        cached = try_to_load_from_cache(str(model), name)
        if isinstance(cached, str):
            return Path(cached)
    return None


def weights_sha256(model: str | Path) -> str | None:
    """The SHA-256 of `model`'s weights file, or None where it has none on this machine."""
    path = weights_file(model)
    return file_sha256(path) if path else None


BUILD_SOURCES = ("tiny_world/build.py", "tiny_world/corpus.py", "tiny_world/topics.json", "tiny_world/quality.py")


def build_inputs_sha256(root: str | Path) -> str:
    """The SHA-256 of what the tiny preset's files are built from: the builder's code, the prompt and the LoRA shape."""
    from lab3.settings import LAB2_LORA, PROMPT_TEMPLATE
    digest = hashlib.sha256(json.dumps([PROMPT_TEMPLATE, LAB2_LORA], sort_keys=True).encode())
    for name in BUILD_SOURCES:
        digest.update(Path(root, name).read_bytes())
    return digest.hexdigest()
