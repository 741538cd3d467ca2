"""The random streams of an update, shared by both backend adaptors.

Each use of random numbers in an update draws from its own stream, keyed by the run's seed, the
update counter and one of these ids, so no two uses ever share numbers. The numbers are part of
what a checkpoint resumes: changing them changes every run.
"""

CRITIC_NOISE, GENERATOR_NOISE, PENALTY = 0, 1, 2
# Labels of generated images in a class-conditional run: one (batch, 2) draw per update counter,
# column 0 for the critic's fakes, column 1 for the generator update's.
LABELS = 3
AUGMENT = 4
CRITIC_SIDE, GENERATOR_SIDE = 0, 1
# Streams per update counter. Kept at 4 (the augmentation stream folds into another counter
# space), so the noise of existing runs is unchanged.
STREAMS = 4


def add(sums: dict, metrics: dict) -> dict:
    """Adds one update's (or round's) metrics to running sums, key by key."""
    return {k: v + metrics[k] for k, v in sums.items()}
