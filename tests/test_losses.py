"""Loss values against their closed forms, on fixed critic outputs; the loss registry."""

import numpy as np
import pytest

from ganpipe import losses

REAL = np.array([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=np.float32)
FAKE = np.array([2.0, -1.0, 0.3, -4.0, 0.0], dtype=np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


# name -> (critic closed form, generator closed form), written from the papers' definitions.
CLOSED_FORMS = {
    "minimax": (
        lambda r, f: -np.log(_sigmoid(r)) - np.log(1.0 - _sigmoid(f)),
        lambda f: np.log(1.0 - _sigmoid(f)),
    ),
    "non_saturating": (
        lambda r, f: -np.log(_sigmoid(r)) - np.log(1.0 - _sigmoid(f)),
        lambda f: -np.log(_sigmoid(f)),
    ),
    "wasserstein": (lambda r, f: f - r, lambda f: -f),
    "hinge": (
        lambda r, f: np.maximum(0.0, 1.0 - r) + np.maximum(0.0, 1.0 + f),
        lambda f: -f,
    ),
    "least_squares": (
        lambda r, f: 0.5 * (r - 1.0) ** 2 + 0.5 * f**2,
        lambda f: 0.5 * (f - 1.0) ** 2,
    ),
}


def _softplus(x):
    return np.log1p(np.exp(x.astype(np.float64)))


# Relativistic losses: (critic(r, f), generator(f, r)) from Jolicoeur-Martineau (2019): the
# pairing form (RpGAN, eq. 8 with f = -log sigmoid), the average forms (section 4.2).
RELATIVISTIC = {
    "rpgan": (
        lambda r, f: -np.log(_sigmoid(r - f)),
        lambda f, r: -np.log(_sigmoid(f - r)),
    ),
    "relativistic_average": (
        lambda r, f: -np.log(_sigmoid(r - f.mean())) - np.log(1.0 - _sigmoid(f - r.mean())),
        lambda f, r: -np.log(_sigmoid(f - r.mean())) - np.log(1.0 - _sigmoid(r - f.mean())),
    ),
    "relativistic_average_least_squares": (
        lambda r, f: (r - f.mean() - 1.0) ** 2 + (f - r.mean() + 1.0) ** 2,
        lambda f, r: (f - r.mean() - 1.0) ** 2 + (r - f.mean() + 1.0) ** 2,
    ),
    "relativistic_average_hinge": (
        lambda r, f: np.maximum(0.0, 1.0 - (r - f.mean())) + np.maximum(0.0, 1.0 + f - r.mean()),
        lambda f, r: np.maximum(0.0, 1.0 - (f - r.mean())) + np.maximum(0.0, 1.0 + r - f.mean()),
    ),
}


@pytest.mark.parametrize("name", sorted(RELATIVISTIC))
def test_relativistic_loss_matches_closed_form(name):
    loss = losses.get(name)
    assert loss.generator_uses_real
    critic_form, generator_form = RELATIVISTIC[name]
    np.testing.assert_allclose(
        np.asarray(loss.critic(REAL, FAKE)), critic_form(REAL, FAKE), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(loss.generator(FAKE, real_scores=REAL)), generator_form(FAKE, REAL),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_pairing_loss_depends_only_on_score_differences():
    loss = losses.get("rpgan")
    shifted = [np.asarray(loss.critic(REAL + c, FAKE + c)) for c in (0.0, 5.0, -3.0)]
    np.testing.assert_allclose(shifted[1], shifted[0], rtol=1e-5)
    np.testing.assert_allclose(shifted[2], shifted[0], rtol=1e-5)
    # Swapping the roles of real and fake swaps the critic's and the generator's losses.
    np.testing.assert_allclose(
        np.asarray(loss.generator(REAL, real_scores=FAKE)), shifted[0], rtol=1e-6
    )


def test_relativistic_generator_refuses_to_run_without_real_scores():
    with pytest.raises(ValueError, match="needs the critic's real scores"):
        losses.get("rpgan").generator(FAKE)


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_loss_matches_closed_form(name):
    loss = losses.get(name)
    critic_form, generator_form = CLOSED_FORMS[name]
    np.testing.assert_allclose(
        np.asarray(loss.critic(REAL, FAKE)), critic_form(REAL, FAKE), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(loss.generator(FAKE)), generator_form(FAKE), rtol=1e-5, atol=1e-6
    )


def test_sigmoid_losses_stay_finite_where_sigmoid_then_log_overflows():
    # In float32, sigmoid(40) == 1 exactly, so the seed's log(1 - sigmoid(40)) is -inf.
    scores = np.array([40.0, -40.0], dtype=np.float32)
    loss = losses.get("non_saturating")
    values = np.asarray(loss.critic(scores, scores))
    assert np.all(np.isfinite(values))
    np.testing.assert_allclose(values, [40.0, 40.0], rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(loss.generator(scores))))


def test_flags():
    assert losses.get("wasserstein").wasserstein_estimate
    assert not losses.get("wasserstein").uses_sigmoid
    assert losses.get("minimax").uses_sigmoid and losses.get("non_saturating").uses_sigmoid
    assert not losses.get("hinge").uses_sigmoid


@pytest.mark.parametrize("name", losses.LOSSES.names())
def test_registry_round_trip(name):
    loss = losses.get(name)
    canonical = losses.LOSSES.resolve(name)
    assert loss.name == canonical
    assert losses.get(loss) is loss
    again = losses.get({"class_name": canonical, "config": loss.get_config()})
    assert type(again) is type(loss)


def test_unknown_loss_lists_known_names():
    with pytest.raises(ValueError, match="Unknown loss 'wassersteen'.*'wasserstein'") as info:
        losses.get("wassersteen")
    for name in ("minimax", "non_saturating", "hinge", "least_squares"):
        assert name in str(info.value)


def test_missing_loss_is_an_error():
    with pytest.raises(ValueError, match="loss is required"):
        losses.get(None)
