"""Is bfloat16 fast on this machine? Times a FLAN-T5-base feed-forward projection in float32 and bfloat16, side by side.

    python -m benchmarks.bf16_matmul

A (4 x 250 tokens, 768) input through a frozen 768 -> 2048 linear layer, forward and forward + backward (the input's
gradient, as in LoRA training), and the backward's product with the weight in its stored layout. The last line is
`bf16_ratio_forward=<bf16/fp32> bf16_ratio_backward=<bf16/fp32>`; above 1 means bfloat16 is slower here.
`speedups.resolve_dtype` keeps the lecture's bfloat16 only on hardware that computes it fast.
"""

import statistics
import time

import torch

from lab3 import speedups


def seconds(fn, repeats: int = 5) -> float:
    """Median seconds of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timings(dtype: torch.dtype) -> dict[str, float]:
    """Seconds of the forward, the forward + backward, and the backward's weight product, in `dtype`."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(768, 2048, bias=False).to(dtype).requires_grad_(False)
    x = torch.randn(4 * 250, 768, dtype=dtype, requires_grad=True)
    grad = torch.randn(4 * 250, 2048, dtype=dtype)
    return {"forward": seconds(lambda: layer(x)),
            "forward+backward": seconds(lambda: layer(x).backward(grad)),
            "grad @ weight": seconds(lambda: grad @ layer.weight)}


def main() -> None:
    rows = {"float32": timings(torch.float32), "bfloat16": timings(torch.bfloat16)}
    print(f"cpu capability: {torch.backends.cpu.get_cpu_capability()}, "
          f"resolve_dtype('bfloat16', 'cpu') = {speedups.resolve_dtype('bfloat16', 'cpu')}")
    print(f"{'dtype':9} " + " ".join(f"{k:>17}" for k in rows["float32"]))
    for name, row in rows.items():
        print(f"{name:9} " + " ".join(f"{1000 * v:15.1f}ms" for v in row.values()))
    forward = rows["bfloat16"]["forward"] / rows["float32"]["forward"]
    backward = rows["bfloat16"]["forward+backward"] / rows["float32"]["forward+backward"]
    print(f"bf16_ratio_forward={forward:.2f} bf16_ratio_backward={backward:.2f}")


if __name__ == "__main__":
    main()
