"""The shared "integer of at least N" check, and the bindings that use it."""

import numpy as np
import pytest

from ganpipe import penalties, settings, sweeps, validate
from ganpipe.eval import metrics
from ganpipe.models import conditioning, factories


@pytest.mark.parametrize("value, minimum", [(1, 1), (0, 0), (7, 2), (np.int64(3), 3), (-2, -5)])
def test_an_integer_of_at_least_the_minimum_comes_back_as_an_int(value, minimum):
    result = validate.at_least("x.count", value, minimum)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value", [0, -1, 2.0, 2.5, True, "3", None, np.float32(4)])
def test_anything_else_is_refused_naming_the_binding(value):
    with pytest.raises(ValueError, match=r"^train\.log_every must be an integer >= 1, got "):
        validate.at_least("train.log_every", value, 1)


def test_the_hint_follows_and_the_error_class_is_the_callers():
    with pytest.raises(sweeps.SweepError, match=r"seeds must be an integer >= 1, got 0\. Try 3\."):
        validate.at_least("seeds", 0, 1, hint="Try 3.", error=sweeps.SweepError)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: settings.positive_int("train.log_every", 0), "train.log_every must be"),
        (lambda: penalties.R1Penalty(every=0), r"R1Penalty\.every must be an integer >= 1"),
        (lambda: metrics.classifier_score(np.ones((4, 2)) / 2, splits=0), "splits must be"),
        (lambda: conditioning.ConcatChannels(embedding_dim=0), "embedding_dim must be an integer"),
        (
            lambda: factories.build_generator(latent_dim=0, blocks=[{"block": "flatten"}]),
            r"build_generator\.latent_dim must be an integer >= 1",
        ),
        (
            lambda: sweeps.make_sweep(gin_files=["gan.gin"], eval_samples=1),
            "eval_samples must be an integer >= 2",
        ),
    ],
)
def test_the_bindings_use_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
