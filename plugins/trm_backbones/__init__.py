"""Built-in backbones: the networks ``f`` that trm applies recursively.

``attention`` (trm_backbones.attention) is the paper's post-norm transformer block stack; ``mlp_mixer``
(trm_backbones.mlp_mixer) the paper's best Sudoku network, mixing over the sequence axis instead of attending.
Each module is its own entry point, registered exactly as a third-party plugin would be.
"""
