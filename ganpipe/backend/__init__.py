"""The backend adaptor of the Keras backend in use: ``ganpipe.backend.tf`` or
``ganpipe.backend.jax``, imported as ordinary modules.

``steps``, ``penalties`` and ``augment`` write the update math once, in ``keras.ops``, over an
explicit state, and call these few functions for what differs between backends (``INTERFACE``):
``gradients`` (and ``record``, a forward pass kept for a later gradient), ``input_gradients``
(the penalties' second order), ``optimizer_step``, ``stateless`` (Keras code over some
variables run on given values), ``carry`` (a new value of the state), ``cond``, ``scan`` (an
update's loop), ``compile_rounds`` (K rounds as one program), ``average_replica_copies``,
``count_nonfinite`` and the random streams (``ReplicaRandom``). ``IN_PLACE`` says how the state
is held: JAX passes arrays in and out of pure functions; TensorFlow's state is the variables,
written in place. The rest of a run asks this package for the pieces each backend owns
(``RUN``): counters, the checkpoint format, the input iterator, fixed noise, PNG encoding, and
what only TensorFlow offers. Outside this package, ``keras.backend.backend()`` is asked only where
WORKSPACE.md names it.
Keras picks the backend (``KERAS_BACKEND`` or ``~/.keras/keras.json``); each adaptor imports only
its own framework.
"""

import keras

from ganpipe.backend.streams import (  # noqa: F401 (re-exported)
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

# What each adaptor supplies for the update math: the one list of the interface.
INTERFACE = (
    "IN_PLACE", "RECORDS_PASSES", "ReplicaRandom", "average_replica_copies", "batch_slice",
    "carry", "compile", "compile_rounds", "cond", "count_nonfinite", "gradients",
    "input_gradients", "is_floating", "optimizer_step", "record", "replica_sum", "scan",
    "stateless",
)  # fmt: skip
# ... and for the rest of a run: what each backend owns, and what only TensorFlow offers
# (SavedModel export, Inception FID/KID, fused optimizer kernels, TFDS before IDX files,
# TensorBoard images).
RUN = (
    "FUSED_OPTIMIZERS", "INCEPTION", "SAVED_MODEL", "SUMMARY_OPS", "TFDS_FIRST", "checkpoint",
    "checkpoint_names", "count", "counters", "draws", "encode_png", "functional",
    "latest_checkpoint", "load_state", "notes", "rounds_per_call", "sync_replica_context",
    "to_tensor", "training_input",
)  # fmt: skip

NAME = keras.backend.backend()
if NAME not in ("jax", "tensorflow"):
    raise ImportError(
        f"ganpipe trains on the TensorFlow or JAX Keras backend; KERAS_BACKEND is {NAME!r}. "
        "Set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax."
    )
if NAME == "jax":
    from ganpipe.backend.jax import (  # noqa: F401 (the interface)
        FUSED_OPTIMIZERS,
        IN_PLACE,
        INCEPTION,
        RECORDS_PASSES,
        SAVED_MODEL,
        SUMMARY_OPS,
        TFDS_FIRST,
        ReplicaRandom,
        average_replica_copies,
        batch_slice,
        carry,
        checkpoint,
        checkpoint_names,
        compile,
        compile_rounds,
        cond,
        count,
        count_nonfinite,
        counters,
        draws,
        encode_png,
        functional,
        gradients,
        input_gradients,
        is_floating,
        latest_checkpoint,
        load_state,
        notes,
        optimizer_step,
        record,
        replica_sum,
        rounds_per_call,
        scan,
        stateless,
        sync_replica_context,
        to_tensor,
        training_input,
    )  # fmt: skip
else:
    from ganpipe.backend.tf import (  # noqa: F401 (the interface)
        FUSED_OPTIMIZERS,
        IN_PLACE,
        INCEPTION,
        RECORDS_PASSES,
        SAVED_MODEL,
        SUMMARY_OPS,
        TFDS_FIRST,
        ReplicaRandom,
        average_replica_copies,
        batch_slice,
        carry,
        checkpoint,
        checkpoint_names,
        compile,
        compile_rounds,
        cond,
        count,
        count_nonfinite,
        counters,
        draws,
        encode_png,
        functional,
        gradients,
        input_gradients,
        is_floating,
        latest_checkpoint,
        load_state,
        notes,
        optimizer_step,
        record,
        replica_sum,
        rounds_per_call,
        scan,
        stateless,
        sync_replica_context,
        to_tensor,
        training_input,
    )  # fmt: skip
