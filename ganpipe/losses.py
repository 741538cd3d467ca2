"""GAN losses: each returns the critic's and the generator's per-example terms.

A loss takes the critic's raw scores (``(batch,)`` tensors, no sigmoid applied) and returns
per-example terms; the trainer averages them over the global batch. Written with ``keras.ops``
only.

Losses that need the probability D(x) = sigmoid(s) compute ``-log D(x)`` as ``softplus(-s)`` and
``-log(1 - D(x))`` as ``softplus(s)``: the same values as the seed tutorial's sigmoid followed by
log, without the ``log(0)`` that the two-step form hits once the sigmoid saturates in float32.
"""

from __future__ import annotations

from keras import ops

from ganpipe.registry import Registry


class GANLoss:
    """Base class. Subclasses define ``critic`` and ``generator``.

    Attributes:
        name: Registry name.
        uses_sigmoid: True where the loss reads the critic's score as a logit (so the critic
            itself must not end in a sigmoid).
        wasserstein_estimate: True where mean(real) - mean(fake) estimates a distance (the
            Wasserstein family), so the trainer logs it.
        generator_uses_real: True where the generator's loss depends on the critic's scores of
            real images too (relativistic losses): each generator update then draws a real batch
            of its own (counted in the run's data position), scores it with the critic as it is
            (no gradient to the critic) and passes ``real_scores``.
    """

    name = "base"
    uses_sigmoid = False
    wasserstein_estimate = False
    generator_uses_real = False

    def critic(self, real_scores, fake_scores):
        """Per-example critic loss, shape ``(batch,)``."""
        raise NotImplementedError

    def generator(self, fake_scores, real_scores=None):
        """Per-example generator loss, shape ``(batch,)``.

        ``real_scores`` are the critic's scores of real images of the same replica, given when
        ``generator_uses_real`` is set (None otherwise).
        """
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Minimax(GANLoss):
    """The original minimax game (Goodfellow et al., 2014, eq. 1).

    critic: -log D(x) - log(1 - D(G(z))); generator: log(1 - D(G(z))), which saturates early in
    training when the critic rejects samples easily.
    """

    name = "minimax"
    uses_sigmoid = True

    def critic(self, real_scores, fake_scores):
        return ops.softplus(-real_scores) + ops.softplus(fake_scores)

    def generator(self, fake_scores, real_scores=None):
        return -ops.softplus(fake_scores)


class NonSaturating(Minimax):
    """Minimax critic with the non-saturating generator loss -log D(G(z)) (Goodfellow et al., 2014).

    The seed tutorial's GAN and DCGAN use this pair.
    """

    name = "non_saturating"

    def generator(self, fake_scores, real_scores=None):
        return ops.softplus(-fake_scores)


class Wasserstein(GANLoss):
    """WGAN (Arjovsky et al., 2017): critic D(G(z)) - D(x), generator -D(G(z)).

    No log and no sigmoid anywhere.
    """

    name = "wasserstein"
    wasserstein_estimate = True

    def critic(self, real_scores, fake_scores):
        return fake_scores - real_scores

    def generator(self, fake_scores, real_scores=None):
        return -fake_scores


class Hinge(GANLoss):
    """Hinge loss (Lim & Ye, 2017; Miyato et al., 2018).

    critic: relu(1 - D(x)) + relu(1 + D(G(z))); generator: -D(G(z)).
    """

    name = "hinge"

    def critic(self, real_scores, fake_scores):
        return ops.relu(1.0 - real_scores) + ops.relu(1.0 + fake_scores)

    def generator(self, fake_scores, real_scores=None):
        return -fake_scores


class LeastSquares(GANLoss):
    """LSGAN with targets a=0, b=1, c=1 (Mao et al., 2017, eq. 2) on raw scores.

    critic: 0.5 (D(x) - 1)^2 + 0.5 D(G(z))^2; generator: 0.5 (D(G(z)) - 1)^2.
    """

    name = "least_squares"

    def critic(self, real_scores, fake_scores):
        return 0.5 * ops.square(real_scores - 1.0) + 0.5 * ops.square(fake_scores)

    def generator(self, fake_scores, real_scores=None):
        return 0.5 * ops.square(fake_scores - 1.0)


class RelativisticPairing(GANLoss):
    """The relativistic pairing GAN (RpGAN; Jolicoeur-Martineau, 2019, "The relativistic
    discriminator"; the objective of R3GAN, Huang et al., 2024), standard (softplus) form.

    Each real image is paired with a generated one (row i with row i):
    critic: softplus(D(G(z)) - D(x)) = -log sigmoid(D(x) - D(G(z)));
    generator: softplus(D(x) - D(G(z))). Only the difference of a pair's scores matters.
    """

    name = "rpgan"
    uses_sigmoid = True
    generator_uses_real = True

    def critic(self, real_scores, fake_scores):
        return ops.softplus(fake_scores - real_scores)

    def generator(self, fake_scores, real_scores=None):
        return ops.softplus(_required(real_scores, self) - fake_scores)


def _required(real_scores, loss):
    if real_scores is None:
        raise ValueError(
            f"The {loss.name} loss needs the critic's real scores on the generator side (the "
            "trainer passes them when generator_uses_real is set)."
        )
    return real_scores


class RelativisticAverage(GANLoss):
    """Relativistic average losses (Jolicoeur-Martineau, 2019, section 4.2): each score is read
    relative to the mean score of the other kind, C~(x) = D(x) - mean D(G(z)) and
    C~(G(z)) = D(G(z)) - mean D(x), means over the replica's batch. ``f1``/``f2`` give the
    family: critic f1(C~(x)) + f2(C~(G(z))) per example pair, generator f1(C~(G(z))) + f2(C~(x)).

    RaSGAN (``relativistic_average``): f1(y) = softplus(-y), f2(y) = softplus(y).
    """

    name = "relativistic_average"
    uses_sigmoid = True
    generator_uses_real = True

    def f1(self, y):
        return ops.softplus(-y)

    def f2(self, y):
        return ops.softplus(y)

    def critic(self, real_scores, fake_scores):
        real_rel = real_scores - ops.mean(fake_scores)
        fake_rel = fake_scores - ops.mean(real_scores)
        return self.f1(real_rel) + self.f2(fake_rel)

    def generator(self, fake_scores, real_scores=None):
        real_scores = _required(real_scores, self)
        fake_rel = fake_scores - ops.mean(real_scores)
        real_rel = real_scores - ops.mean(fake_scores)
        return self.f1(fake_rel) + self.f2(real_rel)


class RelativisticAverageLeastSquares(RelativisticAverage):
    """RaLSGAN (ibid., eq. 19/20 with LSGAN's targets): f1(y) = (y - 1)^2, f2(y) = (y + 1)^2."""

    name = "relativistic_average_least_squares"
    uses_sigmoid = False

    def f1(self, y):
        return ops.square(y - 1.0)

    def f2(self, y):
        return ops.square(y + 1.0)


class RelativisticAverageHinge(RelativisticAverage):
    """RaHingeGAN (ibid.): f1(y) = relu(1 - y), f2(y) = relu(1 + y)."""

    name = "relativistic_average_hinge"
    uses_sigmoid = False

    def f1(self, y):
        return ops.relu(1.0 - y)

    def f2(self, y):
        return ops.relu(1.0 + y)


LOSSES = Registry(
    "loss",
    {
        cls.name: cls
        for cls in (
            Minimax,
            NonSaturating,
            Wasserstein,
            Hinge,
            LeastSquares,
            RelativisticPairing,
            RelativisticAverage,
            RelativisticAverageLeastSquares,
            RelativisticAverageHinge,
        )
    },  # fmt: skip
    aliases={
        "relativistic_pairing": "rpgan",
        "rp": "rpgan",
        "ragan": "relativistic_average",
        "rasgan": "relativistic_average",
        "ralsgan": "relativistic_average_least_squares",
        "rahinge": "relativistic_average_hinge",
        "gan": "minimax",
        "modified_minimax": "non_saturating",
        "ns": "non_saturating",
        "wgan": "wasserstein",
        "lsgan": "least_squares",
    },
    base=GANLoss,
)


def get(identifier) -> GANLoss:
    """Returns the loss for a name, config dict or instance; see ``Registry.get``."""
    loss = LOSSES.get(identifier)
    if loss is None:
        raise ValueError(f"A loss is required; known losses: {', '.join(LOSSES.names())}.")
    return loss
