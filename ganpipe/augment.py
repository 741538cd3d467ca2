"""Differentiable augmentations for the critic: DiffAugment and ADA.

An augmentation sits between the data (or the generator) and the critic: ``train.augment =
@DiffAugment()`` or ``@ADA()``. The trainer calls ``augment(images, rng)`` on every image the
critic sees, real and generated, in both updates, inside the gradient; so the generator is trained
through it, and the critic never sees an image that was not augmented. Every transform is written
with ``keras.ops`` and is differentiable with respect to the images (resampling included: a
bilinear gather, not an image op without a gradient).

``rng`` is the update's random stream (``backend.ReplicaRandom``); each call draws its own
numbers, so real and generated images go through the same random transform *distribution*, with
independent draws per image. Images are NHWC in the run's value range; ``fill`` is the value that
translation, cutout and resampling put where there is no image (0, the middle of [-1, 1], as in
DiffAugment's code).

A stateful augmentation (ADA) has ``variables`` (created by ``build`` under the strategy's scope,
checkpointed with the run, restored exactly on resume), ``observe(real_scores)`` (called once per
critic update, with the critic's scores of the augmented real images) and ``metrics()`` (logged with
the critic's metrics).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from ganpipe import backend
from ganpipe.registry import Registry


class Augmentation:
    """Base class: ``__call__(images, rng)`` returns augmented images of the same shape."""

    name = "base"
    variables: tuple = ()

    def build(self):
        """Creates the augmentation's variables (called once, under the strategy's scope)."""

    def observe(self, real_scores) -> None:
        """Called once per critic update with its scores of the augmented real images."""

    def metrics(self) -> dict:
        """Values logged with the critic's metrics, the same on every replica."""
        return {}

    def __call__(self, images, rng):
        raise NotImplementedError


# -- transforms: images (batch, H, W, C); per-image parameters of shape (batch,) ----------------


def _column(values):
    return ops.reshape(values, [-1, 1, 1, 1])


def brightness(images, delta):
    """Adds ``delta`` to every pixel of each image."""
    return images + _column(delta)


def contrast(images, factor, center=None):
    """Scales each image's deviation from its mean pixel by ``factor``."""
    mean = ops.mean(images, axis=[1, 2, 3], keepdims=True) if center is None else center
    return (images - mean) * _column(factor) + mean


def saturation(images, factor):
    """Scales each pixel's deviation from its mean over channels (no-op on one channel)."""
    mean = ops.mean(images, axis=3, keepdims=True)
    return (images - mean) * _column(factor) + mean


def translate(images, dy, dx, fill=0.0):
    """Shifts each image by whole pixels (``dy`` down, ``dx`` right; int tensors), filling with
    ``fill``. Written as two shift matrices per image, so it is exact and differentiable."""
    h, w = images.shape[1], images.shape[2]

    def shift_matrix(size, shift):
        rows = ops.reshape(ops.arange(size), [1, size, 1])
        cols = ops.reshape(ops.arange(size), [1, 1, size])
        # out[i] = in[i - shift]: a one at (i, i - shift).
        hit = ops.equal(cols, rows - ops.reshape(ops.cast(shift, "int32"), [-1, 1, 1]))
        return ops.cast(hit, images.dtype)

    sy, sx = shift_matrix(h, dy), shift_matrix(w, dx)
    shifted = ops.einsum("bij,bjkc,blk->bilc", sy, images, sx)
    inside = ops.einsum("bij,blk->bil", sy, sx)[..., None]  # 1 where a source pixel exists
    return shifted + (1.0 - inside) * fill


def cutout(images, cy, cx, size: tuple[int, int], fill=0.0):
    """Sets a ``size`` rectangle centred at (``cy``, ``cx``) of each image to ``fill``."""
    h, w = images.shape[1], images.shape[2]
    rows = ops.reshape(ops.arange(h), [1, h, 1, 1])
    cols = ops.reshape(ops.arange(w), [1, 1, w, 1])
    top = _column(ops.cast(cy, "int32") - size[0] // 2)
    left = _column(ops.cast(cx, "int32") - size[1] // 2)
    inside = (rows >= top) & (rows < top + size[0]) & (cols >= left) & (cols < left + size[1])
    keep = 1.0 - ops.cast(inside, images.dtype)
    return images * keep + (1.0 - keep) * fill


def flip_x(images, flip):
    """Mirrors the images where ``flip`` (bool, per image) is set."""
    return ops.where(_column(flip), ops.flip(images, axis=2), images)


def rotate90(images, k):
    """Rotates each square image by ``k`` quarter turns (int per image, 0 to 3)."""
    turns = [images]
    for _ in range(3):
        turns.append(ops.flip(ops.transpose(turns[-1], [0, 2, 1, 3]), axis=1))
    choice = ops.one_hot(ops.cast(k, "int32") % 4, 4, dtype=images.dtype)  # (batch, 4)
    stacked = ops.stack(turns, axis=1)  # (batch, 4, H, W, C)
    return ops.einsum("bt,bthwc->bhwc", choice, stacked)


def resample(images, matrix, fill=0.0):
    """Bilinear resampling through per-image 2x3 affine maps from output pixel centres (in units
    of the image half-size, centred) to input ones; differentiable in the images."""
    b, h, w, c = (ops.shape(images)[0], *images.shape[1:])
    ys, xs = ops.meshgrid(
        (ops.arange(h, dtype="float32") + 0.5) / h * 2.0 - 1.0,
        (ops.arange(w, dtype="float32") + 0.5) / w * 2.0 - 1.0,
        indexing="ij",
    )
    grid = ops.stack([ops.reshape(xs, [-1]), ops.reshape(ys, [-1]), ops.ones([h * w])], axis=0)
    source = ops.einsum("bij,jp->bip", matrix, grid)  # (batch, 2, H*W): x, y in [-1, 1]
    sx = (source[:, 0] + 1.0) * 0.5 * w - 0.5
    sy = (source[:, 1] + 1.0) * 0.5 * h - 0.5
    x0, y0 = ops.floor(sx), ops.floor(sy)
    flat = ops.reshape(images, [b, h * w, c])
    out, coverage = 0.0, 0.0
    for oy in (0.0, 1.0):
        for ox in (0.0, 1.0):
            xi, yi = x0 + ox, y0 + oy
            valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            weight = (1.0 - ops.abs(sx - xi)) * (1.0 - ops.abs(sy - yi))
            weight = ops.where(valid, weight, 0.0)[..., None]  # (batch, H*W, 1)
            index = ops.cast(ops.clip(yi, 0, h - 1) * w + ops.clip(xi, 0, w - 1), "int32")
            out = out + weight * ops.take_along_axis(flat, index[..., None], axis=1)
            coverage = coverage + weight
    out = out + (1.0 - coverage) * fill
    return ops.reshape(out, [b, h, w, c])


def affine(scale_x, scale_y, angle, tx, ty):
    """Per-image 2x3 maps (output -> input) for scaling, then rotation, then translation, all
    about the image centre; translation in units of the half-size."""
    cos, sin = ops.cos(angle), ops.sin(angle)
    # Inverse of T R S: S^-1 R^-1 (p - t).
    row0 = ops.stack([cos / scale_x, sin / scale_x, -(cos * tx + sin * ty) / scale_x], axis=1)
    row1 = ops.stack([-sin / scale_y, cos / scale_y, (sin * tx - cos * ty) / scale_y], axis=1)
    return ops.stack([row0, row1], axis=1)


# -- DiffAugment --------------------------------------------------------------------------------

_POLICIES = ("color", "translation", "cutout")


class DiffAugment(Augmentation):
    """DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN
    Training"): every image the critic sees goes through each transform of the policy, always.

    color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5) (the paper's
    code, on images in [-1, 1]); translation: whole pixels, up to ``translation`` of the size
    each way (paper: 1/8), zero-filled; cutout: one square of ``cutout`` of the size (paper: 1/2)
    at a random place, zeroed.

    Args:
        policy: Comma-separated transforms, in order: 'color', 'translation', 'cutout' (the
            paper's full policy 'color,translation,cutout').
        translation: The largest shift, as a fraction of the image size.
        cutout: The cutout square's side, as a fraction of the image size.
        fill: The value translation and cutout leave where there is no image.
    """

    name = "diffaugment"

    def __init__(self, policy: str = "color,translation,cutout", translation: float = 0.125,
                 cutout: float = 0.5, fill: float = 0.0):  # fmt: skip
        parts = [p.strip() for p in str(policy).split(",") if p.strip()]
        unknown = [p for p in parts if p not in _POLICIES]
        if unknown or not parts:
            raise ValueError(
                f"DiffAugment.policy {policy!r}: unknown or empty part(s) {unknown}. Use a "
                f"comma-separated list of {', '.join(_POLICIES)} (the paper: "
                "'color,translation,cutout')."
            )
        for key, value in (("translation", translation), ("cutout", cutout)):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"DiffAugment.{key} must be in [0, 1), got {value!r}.")
        self.policy, self.translation, self.cutout, self.fill = parts, translation, cutout, fill

    def __call__(self, images, rng):
        batch = ops.shape(images)[0]
        h, w = images.shape[1], images.shape[2]
        u = rng.uniform([batch, 7])  # one draw: every parameter of every transform
        for part in self.policy:
            if part == "color":
                images = brightness(images, u[:, 0] - 0.5)
                images = saturation(images, u[:, 1] * 2.0)
                images = contrast(images, u[:, 2] + 0.5)
            elif part == "translation":
                sy, sx = int(h * self.translation + 0.5), int(w * self.translation + 0.5)
                dy = ops.cast(ops.floor(u[:, 3] * (2 * sy + 1)), "int32") - sy
                dx = ops.cast(ops.floor(u[:, 4] * (2 * sx + 1)), "int32") - sx
                images = translate(images, dy, dx, self.fill)
            else:
                size = (int(h * self.cutout + 0.5), int(w * self.cutout + 0.5))
                cy = ops.floor(u[:, 5] * (h + 1 - size[0] % 2))
                cx = ops.floor(u[:, 6] * (w + 1 - size[1] % 2))
                images = cutout(images, cy, cx, size, self.fill)
        return images

    def __repr__(self) -> str:
        return f"DiffAugment(policy={','.join(self.policy)!r})"


# -- ADA ----------------------------------------------------------------------------------------

# ADA's transforms, in the order they are applied: name -> (uniform, normal) numbers each draws
# per image. The name is also ADA's argument for the transform's probability multiplier. This
# table alone decides which columns of an update's draws a transform reads (one coin each, then its
# uniform and its normal numbers, in table order), so a transform is added by a line here, its
# multiplier and its code in ADA.__call__, with no renumbering. (The draws' shapes then grow, so
# every image's numbers change, though not their distribution.)
ADA_TRANSFORMS = {
    # Pixel blitting.
    "xflip": (1, 0),
    "rotate90": (1, 0),
    "xint": (0, 2),
    # Geometric (one resampling for the four).
    "scale": (0, 1),
    "rotate": (1, 0),
    "aniso": (0, 1),
    "xfrac": (0, 2),
    # Colour.
    "brightness": (0, 1),
    "contrast": (0, 1),
    "saturation": (0, 1),
}


class _AdaDraws:
    """One call's random numbers for ADA, by transform name.

    ``on(name)``: whether each image gets the transform (its coin came up below p times the
    transform's multiplier); ``uniform(name, i)`` / ``normal(name, i)``: its i-th number per image.
    ``any_on``: whether each image gets any transform.
    """

    def __init__(self, rng, batch, p, multipliers):
        coins, uniform, normal = rng.split(3)
        widths = list(ADA_TRANSFORMS.values())
        u = uniform.uniform([batch, sum(w[0] for w in widths)])
        n = normal.normal([batch, sum(w[1] for w in widths)])
        threshold = p * ops.convert_to_tensor([multipliers[k] for k in ADA_TRANSFORMS], "float32")
        on = coins.uniform([batch, len(ADA_TRANSFORMS)]) < threshold
        self.any_on = ops.any(on, axis=1)
        self.zero, self.one = (
            ops.zeros_like(on[:, 0], "float32"),
            ops.ones_like(on[:, 0], "float32"),
        )
        self._on, self._u, self._n = {}, {}, {}
        first_u = first_n = 0
        for index, (name, (uniforms, normals)) in enumerate(ADA_TRANSFORMS.items()):
            self._on[name] = on[:, index]
            self._u[name] = [u[:, first_u + i] for i in range(uniforms)]
            self._n[name] = [n[:, first_n + i] for i in range(normals)]
            first_u, first_n = first_u + uniforms, first_n + normals

    def on(self, name):
        return self._on[name]

    def uniform(self, name, i=0):
        return self._u[name][i]

    def normal(self, name, i=0):
        return self._n[name][i]

    def pick(self, name, value, identity):
        """``value`` where the image gets the transform ``name``, else ``identity``."""
        return ops.where(self._on[name], value, identity)


def _multiplier(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(
            f"ADA.{name} multiplies p for the {name} transform: a finite number >= 0 (0 turns "
            f"it off, 1 applies it with probability p), got {value!r}."
        )
    return float(value)


class ADA(Augmentation):
    """Adaptive discriminator augmentation (Karras et al., 2020, "Training Generative Adversarial
    Networks with Limited Data").

    Each transform is applied to each image independently with probability ``p``: x-flip,
    quarter-turn rotation and integer translation (up to 1/8; the paper's pixel blitting),
    isotropic scaling (log2-normal, std 0.2), rotation (uniform, full turn), anisotropic scaling
    (log2-normal, std 0.2) and fractional translation (normal, std 0.125) by bilinear resampling
    (the paper's geometric group), then brightness (normal, std 0.2), contrast (log2-normal, std
    0.5) and saturation (log2-normal, std 1) (colour; hue and luma flip need 3 channels and are
    left out). The paper's filtering and noise groups are not included.

    Each transform's probability is ``p`` times its own multiplier, an argument named after it
    (``ADA_TRANSFORMS``; stylegan2-ada's per-transform probabilities): ``ADA.rotate90 = 0`` turns
    quarter turns off, for data whose orientation matters. All are 1 by default.

    ``p`` adapts: every ``interval`` critic updates, r_t = E[sign(D(x_real))] over those updates'
    real images is compared with ``target`` (paper: 0.6) and p moves by
    sign(r_t - target) * (images seen) / ``speed_images`` (paper: p can go from 0 to 1 in 500k
    images), clipped to [0, ``max_p``]. ``p`` and r_t are logged as ``augment_p`` and
    ``augment_rt``; the state is checkpointed and restored exactly.

    Args:
        target: The r_t that p steers toward.
        interval: Critic updates between adjustments (paper: 4).
        speed_images: Images over which p can move by 1 (paper: 500,000).
        initial_p: p at the start of a run.
        max_p: The largest p.
        fill: The value left where a transform moved the image away.
        xflip, rotate90, xint, scale, rotate, aniso, xfrac, brightness, contrast, saturation:
            Each transform's probability multiplier (>= 0).
    """

    name = "ada"

    def __init__(self, target: float = 0.6, interval: int = 4, speed_images: int = 500_000,
                 initial_p: float = 0.0, max_p: float = 1.0, fill: float = 0.0, *,
                 xflip: float = 1.0, rotate90: float = 1.0, xint: float = 1.0,
                 scale: float = 1.0, rotate: float = 1.0, aniso: float = 1.0, xfrac: float = 1.0,
                 brightness: float = 1.0, contrast: float = 1.0,
                 saturation: float = 1.0):  # fmt: skip
        given = locals()
        self.multipliers = {name: _multiplier(name, given[name]) for name in ADA_TRANSFORMS}
        if not -1.0 < float(target) < 1.0:
            raise ValueError(f"ADA.target must be in (-1, 1) (paper: 0.6), got {target!r}.")
        if int(interval) < 1 or int(speed_images) < 1:
            raise ValueError("ADA.interval and ADA.speed_images must be >= 1.")
        if not 0.0 <= float(initial_p) <= float(max_p) <= 1.0:
            raise ValueError("ADA needs 0 <= initial_p <= max_p <= 1.")
        self.target, self.interval, self.speed = float(target), int(interval), int(speed_images)
        self.initial_p, self.max_p, self.fill = float(initial_p), float(max_p), fill
        self.variables = ()

    def build(self):
        def variable(name, value, dtype="float32"):
            return keras.Variable(value, dtype=dtype, trainable=False, name=f"ada_{name}",
                                  aggregation="only_first_replica")  # fmt: skip

        self.p = variable("p", self.initial_p)
        self.rt = variable("rt", 0.0)
        self.sign_sum = variable("sign_sum", 0.0)
        self.seen = variable("seen", 0.0)
        self.updates = variable("updates", 0, "int64")
        self.variables = (self.p, self.rt, self.sign_sum, self.seen, self.updates)

    def _require_built(self):
        if not self.variables:
            raise RuntimeError("ADA.build() must be called (the trainer does) before use.")

    def observe(self, real_scores):
        """Accumulates sign(D(x_real)) over the global batch; every ``interval`` updates, adjusts
        p and starts a new interval. Identical on every replica (global sums)."""
        self._require_built()
        signs = backend.replica_sum(ops.sum(ops.sign(ops.cast(real_scores, "float32"))))
        count = backend.replica_sum(ops.cast(ops.shape(real_scores)[0], "float32"))
        # Values, not variables, go into ops.where (JAX refuses a variable there).
        p, old_rt = self.p.value, self.rt.value
        total, seen = self.sign_sum.value + signs, self.seen.value + count
        updates = self.updates.value + 1
        due = ops.equal(updates % self.interval, 0)
        rt = total / ops.maximum(seen, 1.0)
        step = ops.sign(rt - self.target) * seen / float(self.speed)
        self.p.assign(ops.where(due, ops.clip(p + step, 0.0, self.max_p), p))
        self.rt.assign(ops.where(due, rt, old_rt))
        self.sign_sum.assign(ops.where(due, 0.0, total))
        self.seen.assign(ops.where(due, 0.0, seen))
        self.updates.assign(updates)

    def metrics(self) -> dict:
        return {"augment_p": self.p.value, "augment_rt": self.rt.value}

    def __call__(self, images, rng):
        self._require_built()
        h, w = images.shape[1], images.shape[2]
        d = _AdaDraws(rng, ops.shape(images)[0], self.p, self.multipliers)
        zero, one = d.zero, d.one
        original = images
        # Pixel blitting.
        images = flip_x(images, d.on("xflip") & (d.uniform("xflip") < 0.5))
        if h == w:
            turns = d.pick("rotate90", ops.floor(d.uniform("rotate90") * 4.0), zero)
            images = rotate90(images, ops.cast(turns, "int32"))
        on_xint = ops.cast(d.on("xint"), "int32")
        dy, dx = (
            ops.cast(ops.round(ops.clip(d.normal("xint", i) * 0.0625, -0.125, 0.125) * h), "int32")
            for i in (0, 1)
        )
        images = translate(images, dy * on_xint, dx * on_xint, self.fill)
        # Geometric, one resampling for all four.
        iso = d.pick("scale", ops.exp2(d.normal("scale") * 0.2), one)
        angle = d.pick("rotate", (d.uniform("rotate") * 2.0 - 1.0) * math.pi, zero)
        aniso = d.pick("aniso", ops.exp2(d.normal("aniso") * 0.2), one)
        tx, ty = (d.pick("xfrac", d.normal("xfrac", i) * 0.125 * 2.0, zero) for i in (0, 1))
        geometric = d.on("scale") | d.on("rotate") | d.on("aniso") | d.on("xfrac")
        warped = resample(images, affine(iso * aniso, iso / aniso, angle, tx, ty), self.fill)
        images = ops.where(_column(geometric), warped, images)
        # Colour.
        images = brightness(images, d.pick("brightness", d.normal("brightness") * 0.2, zero))
        images = contrast(images, d.pick("contrast", ops.exp2(d.normal("contrast") * 0.5), one))
        images = saturation(images, d.pick("saturation", ops.exp2(d.normal("saturation")), one))
        # An image no transform was drawn for is passed through exactly.
        return ops.where(_column(d.any_on), images, original)

    def __repr__(self) -> str:
        changed = "".join(f", {k}={v}" for k, v in self.multipliers.items() if v != 1.0)
        return f"ADA(target={self.target}, interval={self.interval}, speed={self.speed}{changed})"


AUGMENTATIONS = Registry(
    "augmentation",
    {cls.name: cls for cls in (DiffAugment, ADA)},
    aliases={"diff_augment": "diffaugment", "adaptive": "ada"},
    base=Augmentation,
)


class FunctionAugmentation(Augmentation):
    """A plain function ``(images, rng) -> images`` as a stateless ``Augmentation``."""

    name = "function"

    def __init__(self, function):
        self.function = function

    def __call__(self, images, rng):
        return self.function(images, rng)

    def __repr__(self) -> str:
        return f"FunctionAugmentation({getattr(self.function, '__name__', self.function)!r})"


def get(identifier) -> Augmentation | None:
    """The augmentation for a name or config dict; an ``Augmentation`` is used as it is, and any
    other callable ``(images, rng) -> images`` is wrapped in one (None: no augmentation)."""
    if identifier is None or isinstance(identifier, (str, dict)):
        return AUGMENTATIONS.get(identifier)
    if isinstance(identifier, Augmentation):
        return identifier
    if not callable(identifier):
        raise ValueError(
            f"train.augment must be an augmentation name ({', '.join(AUGMENTATIONS.names())}), "
            f"a gin reference such as @DiffAugment(), or None; got {identifier!r}."
        )
    return FunctionAugmentation(identifier)
