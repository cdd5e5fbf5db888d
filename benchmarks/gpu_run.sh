#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md in one run, each part time-boxed so that one failure leaves the others: the
# fast path's equality tests on CUDA, the PPO iteration benchmark at the lecture's summary length (256 new tokens) and
# at 32 (one process per way, one compilation), and the lab itself (tiny preset, a few steps). Logs go to $OUT
# (default gpu-out/). Name parts to run only those, most important first (about 50, 250 and 80 s on an H200):
#   bash benchmarks/gpu_run.sh [bench] [equality] [lab]
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg TQDM_MININTERVAL=30
part() {  # part NAME SECONDS COMMAND...: run COMMAND with a time limit, its output to the screen and $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date +%T), at most ${limit} s): $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "=== $name exit $? ($(date +%T))"
  grep -v -e '^Loading weights' -e 'Warning' -e 'warnings.warn' "$OUT/$name.log" | tail -n 14
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)"

for name in ${@:-equality bench lab}; do
  case $name in
    equality) part equality 100 python3 -m pytest -q -p no:cacheprovider -s tests/test_fast_generation.py -k cuda ;;
    bench) TORCH_LOGS=recompiles,graph_breaks part bench 330 python3 benchmarks/ppo_step.py --new-tokens 256 32 \
             --repeats 3 --lecture-repeats 1 --work /tmp/bench ;;
    lab) LAB3_OVERRIDES='{"max_ppo_steps": 4, "num_eval_samples": 32}' part lab 80 python3 lab3_rlhf_detox.py ;;
  esac
done
