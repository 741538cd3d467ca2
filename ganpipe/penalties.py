"""Critic penalties, added to the critic's loss: WGAN-GP's gradient penalty
(``gradient_penalty``), R1 / R2 (``r1``) and DRAGAN (``dragan``).

Every penalty is a function of the critic's gradient with respect to its input, taken by
``input_gradient_sq_norms`` through the backend adaptor (``backend.input_gradients``: a gradient
tape on TensorFlow, ``jax.grad`` on JAX), in ``keras.ops`` otherwise. A penalty returns
per-example values, shape ``(batch,)``, already multiplied by its weight; the trainer averages
them over the global batch like the losses.
"""

from __future__ import annotations

import math

from keras import ops

from ganpipe import backend, validate
from ganpipe.models import moments
from ganpipe.registry import Registry


def input_gradient_sq_norms(critic, images):
    """Per-example squared L2 norm of the critic's input gradient, ||grad_x D(x_i)||_2^2.

    The gradient is that of the critic's summed scores with respect to ``images``. Each score
    depends on its own image only (critics used with a penalty do not mix examples), so row i of
    that gradient is grad_x D(x_i). Under mixed precision the scores may be 16-bit; the gradient
    is cast to float32 before the norm is taken.

    Args:
        critic: Callable mapping images to scores ``(batch, 1)``.
        images: The points where the gradient is taken, ``(batch, ...)``.

    Returns:
        float32 tensor of shape ``(batch,)``.
    """
    _, grads = backend.input_gradients(critic, images)
    grads = ops.cast(grads, "float32")
    return ops.sum(ops.square(grads), axis=list(range(1, len(grads.shape))))


def _two_sided(sq_norms, weight: float, target: float, epsilon: float):
    """weight * (||g|| - target)^2 with ||g|| = sqrt(sum(g^2) + epsilon): finite, with a finite
    gradient, when the critic's gradient is exactly zero."""
    norm = ops.sqrt(sq_norms + epsilon)
    return weight * ops.square(norm - target)


def _non_negative(owner: str, name: str, value, hint: str) -> float:
    """``value`` as a float, or a ValueError naming ``owner.name`` unless it is finite and >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{owner}.{name} must be a finite number >= 0, got {value!r}. {hint}")
    return float(value)


class Penalty:
    """Base class: a per-example critic penalty, already multiplied by its weight.

    Args:
        every: k for lazy regularization (Karras et al., 2020, "Analyzing and Improving the
            Image Quality of StyleGAN", section 3.1 "Lazy regularization", and appendix B): the
            penalty is computed only on every k-th critic update, with its weight multiplied by
            k there, so its average contribution to the gradient is unchanged. The penalty only
            carries k; the trainer calls it on updates where its critic update count is a
            multiple of ``every`` and multiplies the result by ``every``. 1 (the default)
            computes it on every update.
    """

    name = "base"

    def __init__(self, *, every: int = 1):
        self._every = validate.at_least(
            f"{type(self).__name__}.every",
            every,
            1,
            hint="1 computes the penalty on every critic update; k computes it on every k-th "
            "update with its weight multiplied by k (StyleGAN2 applies R1 every 16 updates: "
            f"`{type(self).__name__}.every = 16`).",
        )

    @property
    def every(self) -> int:
        """k: the penalty is applied on every k-th critic update, with weight times k."""
        return self._every

    def __call__(self, critic, real, fake, rng):
        """Returns the weighted penalty, shape ``(batch,)``.

        Args:
            critic: Callable mapping images to scores ``(batch, 1)`` (the live critic).
            real: Real images of this replica.
            fake: Generated images of this replica (treated as constants).
            rng: The trainer's replica-aware random generator.
        """
        raise NotImplementedError


class GradientPenalty(Penalty):
    """WGAN-GP's two-sided gradient penalty (Gulrajani et al., 2017, Algorithm 1).

    weight * (||grad_x D(x_hat)||_2 - target)^2 at x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1]
    drawn per example. The norm is sqrt(sum(g^2) + epsilon): finite, with a finite gradient, when
    the critic's gradient is exactly zero. The penalty is per example, so the critic should not mix
    examples (no batch norm in the critic; the paper uses layer norm instead).

    Args:
        weight: lambda, 10 in the paper.
        target: The gradient norm aimed at, 1 in the paper.
        epsilon: Added under the square root of the norm.
        every: Apply on every k-th critic update with weight times k (see ``Penalty``).
    """

    name = "gradient_penalty"

    def __init__(
        self,
        weight: float = 10.0,
        target: float = 1.0,
        epsilon: float = 1e-12,
        *,
        every: int = 1,
    ):
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"GradientPenalty.weight must be finite and >= 0, got {weight!r}.")
        super().__init__(every=every)
        self.weight = float(weight)
        self.target = float(target)
        self.epsilon = float(epsilon)

    def __call__(self, critic, real, fake, rng):
        eps = rng.uniform(_per_example_shape(real), dtype=real.dtype)
        # Under mixed precision the generator's images arrive in 16 bits; interpolate in the real
        # images' dtype.
        fake = ops.cast(fake, real.dtype)
        interpolates = eps * real + (1.0 - eps) * ops.stop_gradient(fake)
        sq_norms = input_gradient_sq_norms(critic, interpolates)
        return _two_sided(sq_norms, self.weight, self.target, self.epsilon)

    def __repr__(self) -> str:
        return f"GradientPenalty(weight={self.weight}, target={self.target}, every={self.every})"


# R1Penalty.on -> the images whose input gradient is penalised.
_R1_IMAGES = {"real": ("real",), "fake": ("fake",), "both": ("real", "fake")}


class R1Penalty(Penalty):
    """Zero-centred gradient penalties: R1 on the real data (Mescheder et al., 2018), R2 on the
    generated data (ibid.), or both (R1 + R2, as in R3GAN: Huang et al., 2024).

    (gamma / 2) * ||grad_x D(x)||_2^2 at every real image x (``on='real'``), at every generated
    image (``on='fake'``), or the sum of the two per-example terms (``on='both'``). Mescheder
    et al.'s image experiments (and the configs of their public code, `reg_param: 10.`) use R1
    with gamma = 10 and the non-saturating loss. The penalty is per example, so the critic should
    not mix examples (no batch norm).

    Args:
        gamma: gamma >= 0 (Mescheder et al.: 10).
        on: 'real' (R1), 'fake' (R2) or 'both' (R1 + R2).
        every: Apply on every k-th critic update with weight times k (see ``Penalty``;
            StyleGAN2 uses 16 for R1).
    """

    name = "r1"

    def __init__(self, gamma: float = 10.0, *, on: str = "real", every: int = 1):
        self.gamma = _non_negative(
            "R1Penalty",
            "gamma",
            gamma,
            "Mescheder et al. (2018) use 10 (`R1Penalty.gamma = 10.0`).",
        )
        if not isinstance(on, str) or on not in _R1_IMAGES:
            raise ValueError(
                f"R1Penalty.on must be 'real' (R1), 'fake' (R2) or 'both' (R1 + R2), got "
                f"{on!r}. Set `R1Penalty.on = 'real'` for Mescheder et al.'s R1."
            )
        super().__init__(every=every)
        self.on = on

    def __call__(self, critic, real, fake, rng):
        del rng  # Draws nothing.
        images = {"real": lambda: real, "fake": lambda: _as_constant(fake, real.dtype)}
        terms = [input_gradient_sq_norms(critic, images[side]()) for side in _R1_IMAGES[self.on]]
        sq_norms = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        return 0.5 * self.gamma * sq_norms

    def __repr__(self) -> str:
        return f"R1Penalty(gamma={self.gamma}, on={self.on!r}, every={self.every})"


def _as_constant(fake, dtype):
    """Generated images as constants in the real images' dtype (16 bits under mixed precision)."""
    return ops.stop_gradient(ops.cast(fake, dtype))


def _per_example_shape(images) -> list:
    """``(batch, 1, ..., 1)``: one number per example, broadcast over the rest."""
    return [ops.shape(images)[0]] + [1] * (len(images.shape) - 1)


def _global_std(images):
    """Standard deviation of every value of the global batch (all replicas, all pixels).

    On one replica this is the standard deviation over the whole batch (NumPy's ``x.std()``).
    Under a multi-replica strategy the sum and then the squared deviations are all-reduced
    (``moments.all_reduced_moments``), so N replicas get the one-replica value up to summation
    order.
    """
    images = ops.stop_gradient(images)
    context = moments.sync_replica_context()
    if context is None:
        return ops.std(images)
    _, variance = moments.all_reduced_moments(images, context)
    return ops.sqrt(variance)


class DraganPenalty(Penalty):
    """DRAGAN's gradient penalty around the real data (Kodali et al., 2017).

    weight * (||grad_x D(x_hat)||_2 - target)^2 with, for each real image x,

        delta = noise_scale * std(batch) * u,   u ~ U[0, 1) independently per pixel,
        x_hat = x + alpha * delta,              alpha ~ U[0, 1) per example (interpolate=True),
        x_hat = x + delta                       (interpolate=False),

    where std(batch) is the standard deviation of all values of the global real batch. This is
    the form of the authors' public code (DRAGAN.ipynb: the batch plus 0.5 * its std times
    uniform noise, then a random point on the segment from x to that perturbed x, lambda = 10,
    target 1). The paper writes the perturbation as a zero-mean Gaussian around x; the code's
    noise is one-sided ([0, 1)), which is what this class reproduces. The norm is
    sqrt(sum(g^2) + epsilon), finite with a finite gradient when the critic's gradient is zero.
    The generated images are not used.

    Both random tensors come from one draw of ``rng`` (alpha is its first column), because the
    trainer's stateless generator returns the same numbers for every call within an update.

    Args:
        weight: lambda >= 0 (10 in the paper and code).
        noise_scale: c >= 0, the perturbation's size in units of the batch's standard deviation
            (0.5 in the code).
        interpolate: Draw x_hat uniformly on the segment from x to x + delta (the code) instead
            of at x + delta.
        target: The gradient norm aimed at (1 in the paper and code).
        epsilon: Added under the square root of the norm.
        every: Apply on every k-th critic update with weight times k (see ``Penalty``).
    """

    name = "dragan"

    def __init__(
        self,
        weight: float = 10.0,
        noise_scale: float = 0.5,
        interpolate: bool = True,
        target: float = 1.0,
        epsilon: float = 1e-12,
        *,
        every: int = 1,
    ):
        self.weight = _non_negative(
            "DraganPenalty", "weight", weight, "Kodali et al. (2017) use 10."
        )
        self.noise_scale = _non_negative(
            "DraganPenalty",
            "noise_scale",
            noise_scale,
            "It is in units of the real batch's standard deviation; the authors' code uses 0.5.",
        )
        if not isinstance(interpolate, bool):
            raise ValueError(
                f"DraganPenalty.interpolate must be True or False, got {interpolate!r}."
            )
        self.interpolate = interpolate
        self.target = _non_negative("DraganPenalty", "target", target, "The paper uses 1.")
        self.epsilon = _non_negative(
            "DraganPenalty", "epsilon", epsilon, "It only keeps the norm differentiable at 0."
        )
        super().__init__(every=every)

    def perturb(self, real, rng):
        """The points x_hat where the gradient is taken (one per real image)."""
        shape = _per_example_shape(real)
        size = math.prod(real.shape[1:])
        draw = rng.uniform([shape[0], size + 1], dtype=real.dtype)
        alpha = draw[:, :1] if self.interpolate else ops.ones_like(draw[:, :1])
        noise = ops.reshape(draw[:, 1:], ops.shape(real))
        alpha = ops.reshape(alpha, shape)
        delta = (self.noise_scale * _global_std(real)) * noise
        return real + alpha * delta

    def __call__(self, critic, real, fake, rng):
        del fake  # DRAGAN looks at the neighbourhood of the real images only.
        sq_norms = input_gradient_sq_norms(critic, self.perturb(real, rng))
        return _two_sided(sq_norms, self.weight, self.target, self.epsilon)

    def __repr__(self) -> str:
        return (
            f"DraganPenalty(weight={self.weight}, noise_scale={self.noise_scale}, "
            f"interpolate={self.interpolate}, target={self.target}, every={self.every})"
        )


def r2(gamma: float = 10.0, *, every: int = 1) -> R1Penalty:
    """R2: the zero-centred penalty on generated images (``R1Penalty(on='fake')``)."""
    return R1Penalty(gamma, on="fake", every=every)


def r1_r2(gamma: float = 10.0, *, every: int = 1) -> R1Penalty:
    """R1 + R2 with one gamma, as in R3GAN (Huang et al., 2024) (``R1Penalty(on='both')``)."""
    return R1Penalty(gamma, on="both", every=every)


PENALTIES = Registry(
    "penalty",
    {
        GradientPenalty.name: GradientPenalty,
        R1Penalty.name: R1Penalty,
        DraganPenalty.name: DraganPenalty,
        "r2": r2,
        "r1_r2": r1_r2,
    },
    aliases={
        "gp": "gradient_penalty",
        "wgan_gp": "gradient_penalty",
        "r1_penalty": "r1",
        "r1_regularization": "r1",
        "dragan_penalty": "dragan",
    },
    base=Penalty,
)


def get(identifier) -> Penalty | None:
    """Penalty for a name, config dict, instance or None."""
    return PENALTIES.get(identifier)
