"""Trains tiny experiments on JAX for a few rounds and saves their metrics and weights.

    XLA_FLAGS=--xla_force_host_platform_device_count=N KERAS_BACKEND=jax \\
        python -m tests.jax_replicas OUT.npz [BINDING ...]

``tests/test_jax_replicas.py`` runs it on 1, 2 and 4 host devices (the batch sharded over them,
``train.strategy = 'auto'``), and as 2 processes of ``jax.distributed``
(``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, ``train.strategy =
'multi_worker_mirrored'``), and compares the runs. TensorFlow stays importable, and the script
records whether anything loaded it (building, training, saving and loading a generator must not).
"""

import os
import sys
import tempfile

EXPERIMENTS = ("recommended",)  # conditional batch norm in the generator, lazy R1
ROUNDS = 3

if __name__ == "__main__":
    import jax
    import keras
    import numpy as np

    import gin
    from ganpipe import config

    out = {}
    for experiment in EXPERIMENTS:
        gin.clear_config()
        config.parse(
            [f"gin/{experiment}.gin", "gin/testing/tiny.gin"],
            ["BATCH_SIZE = 8", "train.strategy = 'auto'", *sys.argv[2:]],
        )
        trainer = config.make_trainer()  # first: it may start jax.distributed
        out["devices"] = np.array(jax.device_count())
        models = (trainer.generator, trainer.critic)
        out[f"{experiment}/initial"] = np.concatenate(
            [np.ravel(w) for m in models for w in m.get_weights()]
        )
        for r in range(ROUNDS):
            for name, value in trainer.train_round().items():
                out[f"{experiment}/round{r}/{name}"] = np.array(value)
        out[f"{experiment}/weights"] = np.concatenate(
            [np.ravel(w) for m in models for w in m.get_weights()]
        )
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "generator.keras")
            trainer.generator.save(path)
            keras.saving.load_model(path)
    out["tensorflow_loaded"] = np.array("tensorflow" in sys.modules)
    np.savez(sys.argv[1], **out)
