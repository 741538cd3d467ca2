"""The backend adaptor of the Keras backend in use: ``backend_tf`` or ``backend_jax``.

``steps``, ``penalties`` and ``augment`` write the update math once, in ``keras.ops``, and call
these few functions for what differs between backends: ``gradients`` (and ``record``, a forward
pass kept for a later gradient), ``input_gradients`` (the penalties' second order), ``compile``,
``run`` (per replica), ``repeat``, ``cond``, ``update_variables``, ``average_replica_copies``,
``count_nonfinite`` and the random streams (``ReplicaRandom``). Keras picks the backend
(``KERAS_BACKEND`` or ``~/.keras/keras.json``); each adaptor imports only its own framework.
"""

import keras

from ganpipe.training.streams import (  # noqa: F401 (re-exported)
    AUGMENT,
    CRITIC_NOISE,
    CRITIC_SIDE,
    GENERATOR_NOISE,
    GENERATOR_SIDE,
    LABELS,
    PENALTY,
    STREAMS,
    add,
)

NAME = keras.backend.backend()
if NAME == "jax":
    from ganpipe.training.backend_jax import *  # noqa: F403
elif NAME == "tensorflow":
    from ganpipe.training.backend_tf import *  # noqa: F403
else:
    raise ImportError(
        f"ganpipe trains on the TensorFlow or JAX Keras backend; KERAS_BACKEND is {NAME!r}. "
        "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    )
