"""Generator and critic architectures: Keras 3 blocks and the factories that wire them."""
