# The tutorial plugin exactly as docs/plugins.md first printed it (trm 0.1.0), renamed sorting_v0: plugins written
# against that page must keep working (tests/test_plugin_contracts.py).
import attrs, numpy as np
from trm.hookspecs import hookimpl
from trm.types import TaskDims, TaskSpec

@attrs.frozen
class SortingOptions:                      # `trm augment sorting key=value` and a recipe's task.options
    source: str = attrs.field(default="generate", metadata={"help": "only 'generate'"})
    length: int = attrs.field(default=8, metadata={"help": "digits per row"})
    num_train: int = attrs.field(default=1000, metadata={"help": "training rows"})
    num_test: int = attrs.field(default=200, metadata={"help": "test rows"})
    seed: int = attrs.field(default=0, metadata={"help": "seed of the random rows"})

def build(options, writer):                # writes through trm's validated writer, never zarr itself
    writer.set_vocabulary(vocab_size=11, seq_len=options.length, pad_id=0, ignore_label_id=0)
    rng = np.random.default_rng(options.seed)
    for split, count in (("train", options.num_train), ("test", options.num_test)):
        out = writer.split(split)
        for _ in writer.progress(range(count), total=count, desc=split):
            row = rng.integers(0, 10, size=(1, options.length))
            out.add_group([(0, row + 1, np.sort(row, axis=1) + 1)])   # one group, one puzzle, identifier 0

@hookimpl
def trm_tasks():
    return [TaskSpec(name="sorting_v0", options_class=SortingOptions, build=build,
                     summary="sort a row of random digits", default_evaluators=("exact_match",),
                     dims=lambda o: TaskDims(vocab_size=11, seq_len=o.length, num_puzzle_identifiers=1))]
