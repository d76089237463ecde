"""What the compiled training step keeps for backward, per benchmark configuration and model.recompute setting.

Runs on a CPU, without a GPU and without generating code: torch.compile traces one supervision step of the
`trm bench` configuration at two small batch sizes, torch's min-cut partitioner (the one inductor uses on CUDA)
decides which forward tensors backward keeps, and their bytes are extrapolated linearly to the configuration's
batch. Run from the project root:

    python docs/measurements/saved_activations.py sudoku-mlp fast auto      # or: sudoku-att maze-att arc-att; faithful

It prints the kept bytes at the full batch and the largest kept tensors (shapes at the first small batch).
docs/performance.md ("Memory") has the results; the peak a GPU measures adds the weights, the carry and backward's
transient tensors.
"""
import collections
import sys

import attrs
import torch
from functorch.compile import min_cut_rematerialization_partition
from torch._dynamo.backends.common import aot_autograd

from trm.bench import PAPER_CONFIGS, build, random_batch


def kept_tensors(name: str, batch_size: int, fast: bool, recompute: str) -> list[tuple[str, tuple, str, int]]:
    config = attrs.evolve(next(c for c in PAPER_CONFIGS if c.name == name), batch_size=batch_size,
                          num_puzzle_identifiers=1)
    kept = []

    def forward_graph(graph_module, _inputs):
        outputs = next(n for n in graph_module.graph.nodes if n.op == "output").args[0]
        for node in outputs:
            value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
            if isinstance(value, torch.Tensor):
                kept.append((str(node.target), tuple(value.shape), str(value.dtype).split(".")[-1],
                             value.numel() * value.element_size()))
        return graph_module.forward

    backend = aot_autograd(fw_compiler=forward_graph, bw_compiler=lambda gm, _: gm.forward,
                           partition_fn=min_cut_rematerialization_partition)
    torch._dynamo.reset()
    model = build(config, torch.device("cpu"), torch.bfloat16, fast=fast, recompute=recompute).train()
    batch = random_batch(config, torch.device("cpu"), torch.Generator().manual_seed(0))
    torch.compile(model, backend=backend, dynamic=False)(model.initial_carry(batch), batch)
    return kept


def main() -> None:
    name, path = sys.argv[1], sys.argv[2]
    recompute = sys.argv[3] if len(sys.argv) > 3 else "auto"
    full = next(c for c in PAPER_CONFIGS if c.name == name).batch_size
    small = (8, 16) if full >= 768 else (2, 4)
    torch.set_num_threads(1)
    runs = [kept_tensors(name, b, path == "fast", recompute) for b in small]
    sizes = [sum(t[3] for t in run) for run in runs]
    at_full = sizes[0] + (sizes[1] - sizes[0]) / (small[1] - small[0]) * (full - small[0])
    print(f"{name} {path} recompute={recompute}: {at_full / 2**30:.2f} GiB kept for backward at batch {full}")
    largest = collections.Counter()
    for target, shape, dtype, size in runs[0]:
        largest[(target, shape, dtype)] += size
    for (target, shape, dtype), size in largest.most_common(8):
        print(f"  {target:32s} {str(shape):22s} {dtype:9s} {size / 2**20:8.1f} MiB at batch {small[0]}")


if __name__ == "__main__":
    main()
