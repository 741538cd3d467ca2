"""Gin: the one place where library and Keras symbols are registered, and where configs are parsed.

Library functions stay free of gin; they are registered here under short names. Gin's
TensorFlow module is never imported (it imports ``tf.estimator``, gone since TF 2.16); Keras
optimizers, schedules and initializers are registered here instead.

``train``'s settings come in groups (``train.intervals = @Intervals()``, ...). The flat bindings
it took before (``train.log_every``, ``train.generator_ema``, ...; ``settings.MOVED``) still
work: ``parse`` rewrites them to their new homes in every file it reads (included files and old
run directories' config.gin among them) and in every binding, logging each.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import io
import logging as std_logging
import os
import re
from collections.abc import Sequence

import keras

import gin
from ganpipe import (
    augment,
    constraints,
    distribute,
    gan,
    optimizers,
    penalties,
    settings,
    shipped,
    trainer,
)
from ganpipe import data as data_lib
from ganpipe.models import factories

# gin name -> (object, module shown in gin, denylist).
_SYMBOLS = {
    "train": (gan.train, "ganpipe", None),
    "Schedule": (settings.Schedule, "ganpipe", None),
    "Latent": (settings.Latent, "ganpipe", None),
    "Intervals": (settings.Intervals, "ganpipe", None),
    "Numerics": (settings.Numerics, "ganpipe", None),
    "EMA": (settings.EMA, "ganpipe", None),
    "Outputs": (settings.Outputs, "ganpipe", None),
    "build_generator": (factories.build_generator, "ganpipe", ["num_classes", "output_shape"]),
    "build_critic": (factories.build_critic, "ganpipe", ["input_shape", "num_classes"]),
    "load_images": (data_lib.load_images, "ganpipe", None),
    "make_strategy": (distribute.make_strategy, "ganpipe", None),
}
# Registries whose classes are gin configurables, each under its class name (WeightClip,
# GradientPenalty, ADA, Adam, CosineDecay, ...), and the gin module of the Keras classes among
# them (ganpipe's own show as "ganpipe"). A class added to one of them is configurable at once.
GIN_REGISTRIES = (
    (constraints.CONSTRAINTS, None),
    (penalties.PENALTIES, None),
    (augment.AUGMENTATIONS, None),
    (optimizers.OPTIMIZERS, "keras.optimizers"),
    (optimizers.SCHEDULES, "keras.optimizers.schedules"),
)
for _cls in (
    keras.initializers.TruncatedNormal,
    keras.initializers.RandomNormal,
    keras.initializers.RandomUniform,
    keras.initializers.GlorotUniform,
    keras.initializers.GlorotNormal,
    keras.initializers.HeNormal,
    keras.initializers.HeUniform,
    keras.initializers.Orthogonal,
    keras.initializers.Zeros,
    keras.initializers.Ones,
    keras.initializers.Constant,
):
    _SYMBOLS[_cls.__name__] = (_cls, "keras.initializers", None)

CONFIGURABLES: dict[str, object] = {}
log = std_logging.getLogger("absl")


class _DropIncludeSearchNoise(std_logging.Filter):
    def filter(self, record: std_logging.LogRecord) -> bool:
        return not record.pathname.endswith("resource_reader.py")


class ConfigError(ValueError):
    """A gin file or binding cannot be used; the message says where and how to fix it."""


def _registry_symbols() -> None:
    """Adds every class of ``GIN_REGISTRIES`` to ``_SYMBOLS`` that is not there yet.

    Raises:
        ValueError: a class's name is the gin name of another object.
    """
    for registry, keras_module in GIN_REGISTRIES:
        for obj in registry.entries.values():
            if not inspect.isclass(obj):
                continue  # a factory function (penalties' r2): reached by its registry name
            ours = obj.__module__.split(".")[0] == "ganpipe"
            module = "ganpipe" if ours or keras_module is None else keras_module
            taken = _SYMBOLS.setdefault(obj.__name__, (obj, module, None))[0]
            if taken is not obj:
                raise ValueError(
                    f"The {registry.concept} {obj!r} cannot be the gin configurable "
                    f"{obj.__name__!r}: that name is {taken!r}'s. Rename the class."
                )


_registry_symbols()


def register() -> None:
    """Registers every configurable (once per process; calling again is free)."""
    _registry_symbols()
    for name, (obj, module, denylist) in _SYMBOLS.items():
        if name not in CONFIGURABLES:
            CONFIGURABLES[name] = gin.external_configurable(
                obj, name=name, module=module, denylist=denylist
            )


def register_configurable(
    name: str, obj, *, module: str = "ganpipe", denylist: Sequence[str] | None = None
):
    """Registers ``obj`` as the gin configurable ``name`` for a module that config.py does not
    import (the sweep library registers ``sweep`` so, and config.py stays free of it); returns
    the gin-wrapped callable, which applies the parsed bindings. Registering the same object
    again returns the same callable.

    Raises:
        ValueError: ``name`` is already the name of another object.
    """
    if name in _SYMBOLS and _SYMBOLS[name][0] is not obj:
        raise ValueError(f"The gin name {name!r} is already taken by {_SYMBOLS[name][0]!r}.")
    _SYMBOLS[name] = (obj, module, list(denylist) if denylist is not None else None)
    register()
    return CONFIGURABLES[name]


def _parameters(name: str) -> list[str]:
    obj = _SYMBOLS[name][0]
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = inspect.signature(target).parameters
    denied = set(_SYMBOLS[name][2] or [])
    return [p for p in params if p not in ("self", "args", "kwargs") and p not in denied]


def _explain(error: Exception) -> str:
    """Adds close-match suggestions to gin's error message."""
    message = str(error)
    hints = []
    match = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", message)
    if match:
        owner, param = match.group(1).split("/")[-1].split(".")[-1], match.group(2)
        if owner in _SYMBOLS:
            known = _parameters(owner)
            close = difflib.get_close_matches(param, known, n=3)
            if owner == "train":  # a misspelt old flat name: point at its new home
                moved = difflib.get_close_matches(param, list(settings.MOVED), n=3)
                close += [settings.MOVED[name] for name in moved]
            hints.append(
                f"{owner} has no parameter {param!r}"
                + (f"; did you mean {close}?" if close else ".")
                + f" Its parameters: {', '.join(known)}."
            )
    match = re.search(r"No configurable matching (?:reference )?'@?([^'(]+)", message)
    if match:
        name = match.group(1).split("/")[-1].split(".")[-1]
        close = difflib.get_close_matches(name, list(_SYMBOLS), n=3)
        if close:
            hints.append(f"{name!r} is not a configurable; did you mean {close}?")
        hints.append(f"Known configurables: {', '.join(sorted(_SYMBOLS))}.")
    return message + ("\n" + "\n".join(hints) if hints else "")


class _MovedBindings:
    """Rewrites the moved flat bindings of ``train`` (``settings.MOVED``) to their new homes in
    the text gin reads, logging each old name once per parse.

    Inside ``with``, gin opens every file (an included one too) through ``read``: gin has no
    public hook that comes before its own ``open``, so the reader goes first in its list.
    """

    def __init__(self):
        self.logged: set[str] = set()

    def rewrite(self, text: str, where: str) -> str:
        text, moved = settings.move_bindings(text)
        for old, new in moved:
            if old not in self.logged:
                self.logged.add(old)
                log.warning(
                    "%s is now %s (in %s). The old name still works; write %s instead.",
                    old, new, where, new,
                )  # fmt: skip
        return text

    @contextlib.contextmanager
    def read(self, path: str):
        with open(path) as f:
            rewritten = io.StringIO(self.rewrite(f.read(), path))
        rewritten.name = path  # gin's error messages name the file
        yield rewritten

    def __enter__(self):
        self._entry = (self.read, os.path.isfile)
        gin.config._FILE_READERS.insert(0, self._entry)
        return self

    def __exit__(self, *exc):
        gin.config._FILE_READERS.remove(self._entry)


# Bound before any file, so every config has them and a group's bindings alone take effect
# (``Intervals.eval_every = 2000``); a file may still bind another (``@fast/Intervals()``).
GROUP_BINDINGS = tuple(f"train.{p} = @{g.__name__}()" for p, g in settings.GROUPS.items())


def parse(gin_files: Sequence[str], gin_params: Sequence[str] = ()) -> str:
    """Parses experiment files and bindings, rejecting unknown names; returns the parsed config.

    Later files and bindings override earlier ones. A file name is the user's own file if it
    exists, else the shipped experiment of that name (``shipped.resolve``). Includes are searched
    in the shipped folder and next to each file. ``train``'s groups are bound to their classes
    first (``GROUP_BINDINGS``). A moved flat binding of ``train`` (``train.log_every``, ...) is
    read as its new one (``Intervals.log_every``), with a warning.

    Raises:
        ConfigError: a file is missing, has a syntax error, or names an unknown configurable or
            parameter.
    """
    register()
    gin.clear_config()
    if not gin_files:
        raise ConfigError("Give at least one --gin_file, e.g. --gin_file=gin/wgan.gin.")
    try:
        resolved = [shipped.resolve(path) for path in gin_files]
        folder = shipped.folder()
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from error
    for directory in dict.fromkeys([folder] + [os.path.dirname(p) for p in resolved]):
        gin.add_config_file_search_path(directory)
    # gin logs an error for every search-path miss while it resolves an include; a real miss
    # raises, so those lines are noise.
    quiet = _DropIncludeSearchNoise()
    root = std_logging.getLogger()
    root.addFilter(quiet)
    for handler in root.handlers:
        handler.addFilter(quiet)
    try:
        gin.parse_config(GROUP_BINDINGS)
        with _MovedBindings() as moved:
            params = [moved.rewrite(p, f"--gin_param {p.strip()!r}") for p in gin_params]
            gin.parse_config_files_and_bindings(
                resolved, params, skip_unknown=False, finalize_config=False
            )
    except Exception as error:  # gin raises ValueError, SyntaxError, KeyError, IOError, ...
        raise ConfigError(f"Cannot parse the config: {_explain(error)}") from error
    finally:
        root.removeFilter(quiet)
        for handler in root.handlers:
            handler.removeFilter(quiet)
    return gin.config_str()


def make_trainer(**overrides) -> trainer.Trainer:
    """Builds the gin-configured ``Trainer`` (the ``train`` configurable, ``gan.train``) from the
    parsed config."""
    register()
    try:
        return CONFIGURABLES["train"](**overrides)
    except TypeError as error:
        if "missing" in str(error) and "argument" in str(error):
            raise ConfigError(
                f"A required binding is missing: {error}. Bind it in a gin file or with "
                "--gin_param."
            ) from error
        raise


def setting(configurable: str, parameter: str):
    """The value the parsed config gives ``configurable``'s ``parameter``, as gin would pass it
    when calling it: the binding with its references resolved (a factory bound as
    ``@build_generator`` comes back as a callable that applies its own bindings, ``@Latent()``
    as the object it makes, a macro as its value), or, where nothing is bound, the default in
    the configurable's signature. Nothing else is built.

    Raises:
        ConfigError: ``configurable`` is not one of ours, it has no such parameter, or the
            parameter is required and not bound.
    """
    register()
    if configurable not in _SYMBOLS:
        raise ConfigError(
            f"{configurable!r} is not a configurable. Known: {', '.join(sorted(_SYMBOLS))}."
        )
    known = _parameters(configurable)
    if parameter not in known:
        raise ConfigError(
            f"{configurable} has no parameter {parameter!r}. Its parameters: {', '.join(known)}."
        )
    bindings = gin.get_bindings(configurable, resolve_references=False)
    if parameter in bindings:
        # gin resolves a configurable's bindings by deep-copying them (ConfigurableReference
        # implements __deepcopy__): references to call are called, the others are wrapped.
        return copy.deepcopy(bindings[parameter])
    obj = _SYMBOLS[configurable][0]
    default = (
        inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
        .parameters[parameter]
        .default
    )
    if default is inspect.Parameter.empty:
        raise ConfigError(
            f"{configurable}.{parameter} is required and not bound. Bind it in a gin file or "
            "with --gin_param."
        )
    return default


def train_setting(name: str):
    """What the parsed config gives the trainer's setting ``name``, without building the trainer:
    ``setting('train', name)`` for a parameter of ``train``, or one field of a group, named by
    its binding (``'Numerics.precision'``) or by the flat name it had before the groups
    (``'precision'``, ``'generator_ema'``; ``settings.MOVED``). A group's field is read from the
    group ``train`` is given (bound, else its default).

    Raises:
        ConfigError: no such parameter or group field, or a required one is not bound.
    """
    group, dot, field = settings.MOVED.get(name, name).partition(".")
    if not dot:
        return setting("train", name)
    parameter = next((p for p, g in settings.GROUPS.items() if g.__name__ == group), None)
    if parameter is None or field not in _parameters(group):
        groups = ", ".join(g.__name__ for g in settings.GROUPS.values())
        raise ConfigError(f"{name!r} is not a setting of train's groups ({groups}).")
    return getattr(setting("train", parameter), field)


def configurables() -> dict[str, tuple[object, str, tuple[str, ...]]]:
    """Every registered gin name -> (the object it calls, the module gin shows, the parameters
    gin may not bind because the caller passes them). For the generated reference
    (``python -m ganpipe.reference``)."""
    register()
    return {
        name: (obj, module, tuple(deny or ())) for name, (obj, module, deny) in _SYMBOLS.items()
    }
