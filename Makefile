# The README's two commands: `make lab` (set up, build the tiny preset if missing, run the lab) and `make test`.
PY ?= python3
PRESET ?= tiny
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TQDM_MININTERVAL ?= 5

.PHONY: lab test setup tiny

lab: setup tiny
	mkdir -p outputs
	LAB3_PRESET=$(PRESET) $(PY) -m papermill lab3_rlhf_detox.ipynb outputs/lab3_rlhf_detox.ipynb -p output_dir outputs

test: setup tiny
	$(PY) -m pytest -q tests

setup:
	bash scripts/setup.sh

tiny: checkpoints/tiny/MANIFEST.json

# The tiny preset is shipped; it is built only where it is missing (the lab checks its files against the manifest).
checkpoints/tiny/MANIFEST.json:
	$(PY) -m tiny_world.build checkpoints/tiny
