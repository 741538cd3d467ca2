"""ganpipe: a declarative GAN training pipeline.

Keras 3 blocks are wired into generators and critics by gin files; an alternating,
tf.distribute-aware trainer runs them. See README.md for the quickstart and WORKSPACE.md for
the architecture.

Importing ganpipe turns TensorFlow's oneDNN CPU kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) unless
the variable is set: TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI/BF16 or
AMX, and on a 2-core AMD EPYC with AVX2 alone they trained the recipe 1.4 to 1.7x faster
(docs/results.md). It must happen before TensorFlow loads; ``onednn_note`` says what was done,
and the trainer logs it once.
"""

import os

__version__ = "0.1.0"

_ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
_ONEDNN_SET_HERE = _ONEDNN not in os.environ
os.environ.setdefault(_ONEDNN, "1")


def onednn_note() -> str:
    """One line on TensorFlow's oneDNN setting: set by ganpipe, or the user's own."""
    if _ONEDNN_SET_HERE:
        return (
            f"{_ONEDNN} was unset, so ganpipe set it to 1: TensorFlow's oneDNN CPU kernels, which "
            "TensorFlow enables by itself only on AVX-512 VNNI/BF16 or AMX CPUs. Set "
            f"{_ONEDNN}=0 to run without them."
        )
    return f"{_ONEDNN}={os.environ.get(_ONEDNN)} (set outside ganpipe; kept)."
