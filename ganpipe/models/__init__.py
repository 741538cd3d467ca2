"""Generator and critic architectures: Keras 3 blocks and the factories that wire them."""

from ganpipe import lazy_tf

# Every path that builds, saves or loads a model imports this package first.
lazy_tf.stop_keras_probe()
