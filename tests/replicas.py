"""Distribution checks that need the CPU split into logical devices, run in a fresh process.

``python -m tests.replicas CHECK [ARGS...]`` splits the CPU into 4 logical devices (which must
happen before TensorFlow starts), runs one check and prints its findings as one JSON line after
``RESULT``; tests/test_distribute.py runs it and asserts on them.
"""

import gc
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

DEVICES = 4
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * DEVICES)

from ganpipe import (  # noqa: E402
    backend,  # noqa: E402
    config,
    distribute,
)
from ganpipe.training import callbacks  # noqa: E402

ROUNDS = 2
GENERATOR_STEPS = 1  # per round: keeps DCGAN's 5/50 rounds short; the schedule's critic steps stay


_STRATEGIES: dict[int, tf.distribute.Strategy] = {}


def _shared_strategy(name, devices=None):
    # One MirroredStrategy per replica count for the whole process, as in a real run: two
    # strategies in one process would reuse collective-op keys and abort each other.
    del devices
    if name == "default":
        return tf.distribute.get_strategy()
    replicas = int(name.split(":")[1])
    if replicas not in _STRATEGIES:
        _STRATEGIES[replicas] = tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(replicas)]
        )
    return _STRATEGIES[replicas]


distribute.make_strategy = _shared_strategy
# Everything imported so far is out of the collector's reach (as in tests/conftest.py), so the
# collection before each case (``make``) walks only what the cases made.
gc.collect()
gc.freeze()


# Every case's trainer, kept to the end: freeing one (its traced graphs) took 2 to 7 s of the
# 4-replica process's 68, and the process ends with os._exit, which frees nothing.
_KEPT: list = []


def make(experiment: str, replicas: int, *params: str):
    # What the earlier cases made is kept (``_KEPT``) and moved out of the collector's reach:
    # left to Python's collector, a later case's tracing walks it all (dcgan's per-replica batch
    # norm case took 42 s instead of 6 s as the fifth case of the 4-replica process).
    gc.collect()
    gc.freeze()
    keras.utils.clear_session()
    strategy = "default" if replicas == 1 else f"mirrored:{replicas}"
    config.parse(
        [f"gin/{experiment}.gin", "gin/testing/tiny.gin"],
        [f"train.strategy = '{strategy}'", *params],
    )
    trainer = config.make_trainer()
    assert trainer.strategy.num_replicas_in_sync == replicas
    _KEPT.append(trainer)
    return trainer


def copies(trainer, variable) -> list[np.ndarray]:
    return [np.asarray(x) for x in trainer.strategy.experimental_local_results(variable.value)]


def copies_disagree(trainer) -> list[str]:
    """Variables whose per-replica copies are not bitwise equal."""
    disagree = []
    for model in (trainer.generator, trainer.critic):
        for variable in model.variables:
            first, *others = copies(trainer, variable)
            if any(not np.array_equal(first, other) for other in others):
                disagree.append(variable.path)
    return disagree


# Case -> (experiment file, extra bindings, replica counts it runs on). The shipped DCGAN-model
# experiments (dcgan, wgan, wgan_gp) synchronise batch norm by default; "per-replica-bn" turns
# that off, and its 1-replica reference is dcgan's (one replica has one set of statistics).
# "penalty-summed" is compared with wgan_gp's 1-replica run: a bug the tolerances must catch.
# Every case runs at tiny.gin's 16-number latent. Measured (oneDNN off), 2 and 4 replicas: the
# DCGAN-model cases' differences stay under 3e-6 (losses) and 5e-5 (weights), far inside their
# tolerances, and per-replica batch norm still moves the loss by 2.2e-2 and the weights by 0.61
# (its test asks for 2e-3 and 5e-2). WGAN-GP's penalty is noisier: loss 7.6e-4, weights 2.4e-2 on
# 4 replicas (its tolerances 2e-3 and 5e-2), the summed-penalty bug 0.98 and 0.34 (its test asks
# 2e-2 and 0.2), the same on an AMD EPYC with AVX-512 and on one with AVX-512 VNNI/BF16 and
# VP2INTERSECT. At the experiment's own 4,608-number latent the second CPU's 4-replica run
# differed by 0.18 of the weights' change (its Adam steps are about the learning rate times the
# sign of gradients near zero), against 6e-4 on an AVX-512 Xeon: that latent is not used.
PARITY_CASES = {
    "gan": ("gan", (), (1, 2, 4)),
    "wgan": ("wgan", ("Schedule.critic_steps = 2",), (1, 2, 4)),
    "wgan_gp": ("wgan_gp", (), (1, 2, 4)),
    "dcgan": ("dcgan", (), (1, 2, 4)),
    "dcgan-per-replica-bn": ("dcgan", ("build_generator.sync_batch_norm = False",), (4,)),
    # What a replica bug that sums the 2 replicas' penalties instead of averaging them would train.
    "wgan_gp-penalty-summed": ("wgan_gp", ("GradientPenalty.weight = 20.0",), (2,)),
}


def parity(replicas: str, output: str) -> dict:
    """Trains every parity case ROUNDS rounds on ``replicas`` replicas; saves losses and weights.

    One process per replica count (see ``_shared_strategy``). The process then runs the slow
    checks made for its replica count (``ALONGSIDE``), each result under ``checks`` (or the
    error it raised), so that they need no process of their own.
    """
    replicas = int(replicas)
    arrays, result = {}, {}
    for case, (experiment, params, counts) in PARITY_CASES.items():
        if replicas not in counts:
            continue
        trainer = make(experiment, replicas, *params)
        variables = (*trainer.generator.variables, *trainer.critic.variables)
        for index, variable in enumerate(variables):
            arrays[f"{case}/initial{index:03d}"] = np.asarray(variable)
        rounds = [trainer.train_round(GENERATOR_STEPS) for _ in range(ROUNDS)]
        names = sorted(rounds[0])
        arrays[f"{case}/losses"] = np.array([[r[k] for k in names] for r in rounds])
        for index, variable in enumerate(variables):
            arrays[f"{case}/weight{index:03d}"] = np.asarray(variable)
        result[case] = {"metrics": names, "copies_disagree": copies_disagree(trainer)}
    np.savez(output, **arrays)
    result["checks"] = {}
    for name, (check, args) in ALONGSIDE.get(replicas, {}).items():
        try:
            result["checks"][name] = check(*args)
        except Exception as error:  # reported by the check's own test
            result["checks"][name] = {"error": f"{type(error).__name__}: {error}"}
    return result


def noise() -> dict:
    """What each of 4 replicas draws for one update, against what one replica draws."""
    strategy = _shared_strategy(f"mirrored:{DEVICES}")
    global_batch, counter = 8, tf.constant(7, tf.int64)
    result = {}
    for kind in ("normal", "uniform"):

        def draw(kind=kind):
            rng = backend.ReplicaRandom(0, counter, 1, global_batch)
            return getattr(rng, kind)([global_batch // DEVICES, 3])

        single = getattr(backend.ReplicaRandom(0, counter, 1, global_batch), kind)(
            [global_batch, 3]
        ).numpy()
        per_replica = [
            np.asarray(x) for x in strategy.experimental_local_results(strategy.run(draw))
        ]
        result[kind] = {
            "distinct_pairs": sum(
                not np.array_equal(a, b)
                for i, a in enumerate(per_replica)
                for b in per_replica[i + 1 :]
            ),
            "concatenation_equals_one_replica": bool(
                np.array_equal(np.concatenate(per_replica), single)
            ),
        }
    return result


def data() -> dict:
    """Per-replica batches of a 4-replica trainer against the 1-replica stream, over 3 epochs."""
    trainer = make("gan", DEVICES)
    reference = iter(trainer.dataset)
    per_epoch = 64 // 8
    mismatches, seen = 0, []
    for _ in range(3 * per_epoch):
        parts = [
            np.asarray(x)
            for x in trainer.strategy.experimental_local_results(next(trainer.iterator))
        ]
        mismatches += not np.array_equal(np.concatenate(parts), next(reference).numpy())
        seen.append(np.concatenate(parts))
    first_epoch = np.concatenate(seen[:per_epoch])
    distinct = len({row.tobytes() for row in first_epoch})
    return {
        "mismatched_batches": mismatches,
        "replica_batch_shapes": [list(p.shape) for p in parts],
        "distinct_in_first_epoch": distinct,
        "rows_in_first_epoch": int(first_epoch.shape[0]),
    }


def nan(policy: str) -> dict:
    """A NaN in replica 1's copy of one critic weight only, at round 2 of 4."""
    import tempfile

    trainer = make("gan", 2, "NUM_STEPS = 4", f"Numerics.non_finite = '{policy}'")
    original = trainer.train_round
    calls = {"n": 0}

    def train_round(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            copy = trainer.strategy.experimental_local_results(
                trainer.critic.trainable_variables[0].value
            )[1]
            value = np.array(copy.numpy())
            value.flat[0] = np.nan
            copy.assign(value)
        return original(*args, **kwargs)

    trainer.train_round = train_round
    outcome = "completed"
    try:
        trainer.fit(tempfile.mkdtemp())
    except callbacks.NonFiniteLossError as error:
        outcome = f"stopped: {error}"
    finite = all(
        np.all(np.isfinite(c))
        for model in (trainer.generator, trainer.critic)
        for v in model.variables
        for c in copies(trainer, v)
    )
    return {
        "outcome": outcome,
        "step": int(trainer.step.numpy()),
        "all_copies_finite": bool(finite),
        "copies_disagree": copies_disagree(trainer),
    }


def ada() -> dict:
    """ADA's state after 4 critic updates on 1 and on 2 replicas (every copy)."""
    params = ("NUM_STEPS = 4", "train.augment = @ADA()", "ADA.interval = 1",
              "ADA.speed_images = 16", "ADA.initial_p = 0.5")  # fmt: skip
    found = {}
    for replicas in (1, 2):
        trainer = make("gan", replicas, *params)
        trainer.train_steps(4)
        found[replicas] = [
            [float(c) for c in copies(trainer, v)] for v in trainer.augment.variables
        ]
    return {"one": found[1], "two": found[2]}


CHECKS = {"parity": parity, "noise": noise, "data": data, "nan": nan, "ada": ada}
# The slow checks each parity process runs after its cases, by its replica count.
ALONGSIDE = {
    2: {"nan-stop": (nan, ("stop",)), "nan-skip": (nan, ("skip",)), "ada": (ada, ())},
    DEVICES: {"noise": (noise, ()), "data": (data, ())},
}

if __name__ == "__main__":
    check, *args = sys.argv[1:]
    print("RESULT " + json.dumps(CHECKS[check](*args)), flush=True)
    sys.stderr.flush()
    os._exit(0)  # nothing left to free or flush (``_KEPT``)
