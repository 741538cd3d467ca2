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
            real images too (relativistic losses): the generator update then scores the last
            critic update's real batch (no extra data is drawn) and passes ``real_scores``.
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


LOSSES = Registry(
    "loss",
    {cls.name: cls for cls in (Minimax, NonSaturating, Wasserstein, Hinge, LeastSquares)},
    aliases={
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
