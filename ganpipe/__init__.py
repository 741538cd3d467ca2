"""ganpipe: a declarative GAN training pipeline.

Keras 3 blocks are wired into generators and critics by gin files; an alternating,
tf.distribute-aware trainer runs them. See README.md for the quickstart and WORKSPACE.md for
the architecture.
"""

__version__ = "0.1.0"
