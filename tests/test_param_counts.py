"""Exact dense parameter counts of the paper's four configurations (docs/reference-code.md 3.8), built on the meta device."""

import pytest
import torch

from trm.build import assemble
from trm.engine import ModelConfig, model_summary

CONFIGS = [
    # name, backbone, options, vocab, grid length, n, identifiers, expected dense parameters
    ("sudoku-mlp", "mlp_mixer", {}, 11, 81, 6, 1, 5_028_866),
    ("sudoku-att", "attention", {"positions": "rope"}, 11, 81, 6, 1, 6_828_034),
    ("maze-att", "attention", {"positions": "rope"}, 6, 900, 4, 1, 6_822_914),
    ("arc-att", "attention", {"positions": "rope"}, 12, 900, 4, 876_406, 6_829_058),
]


@pytest.mark.parametrize("name,backbone,options,vocab,length,n,ids,expected", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_paper_configurations(name, backbone, options, vocab, length, n, ids, expected):
    with torch.device("meta"):
        model = assemble(ModelConfig(l_cycles=n), backbone, options, "act_q", None, vocab_size=vocab, seq_len=length,
                         num_puzzle_identifiers=ids)
    assert sum(p.numel() for p in model.parameters()) == expected
    lines = model_summary(model)
    assert f"dense parameters: {expected:,}" in lines
    assert f"puzzle-embedding table: {ids:,} rows x 512 = {ids * 512:,} values ({ids * 512 * 4 / 1e6:,.1f} MB fp32)" in lines


def test_mixer_over_900_cells_has_the_papers_19m():
    with torch.device("meta"):
        model = assemble(ModelConfig(l_cycles=4), "mlp_mixer", {}, vocab_size=12, seq_len=900)
    assert sum(p.numel() for p in model.parameters()) == 18_801_666
