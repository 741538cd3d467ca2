"""The Registry: names, aliases and their errors, get and serialize, register and unregister; and
every registry of the package through the same interface."""

import subprocess

import keras
import pytest

from ganpipe import augment, config, constraints, losses, optimizers, penalties
from ganpipe.data import sources
from ganpipe.eval import classifier
from ganpipe.models import blocks, conditioning
from ganpipe.registry import Registry
from tests import prestarted
from tests.conftest import REPO


class Base:
    pass


class Small(Base):
    def __init__(self, size=1):
        self.size = size


class Large(Small):
    pass


def _registry():
    return Registry("shape", {"small": Small, "large": Large}, aliases={"tiny": "small"}, base=Base)


def test_names_include_aliases_and_resolve_any_spelling():
    shapes = _registry()
    assert shapes.names() == ["large", "small", "tiny"]
    assert [shapes.resolve(n) for n in ("Small", " TINY ", "large")] == ["small", "small", "large"]
    assert list(shapes) == ["small", "large"] and len(shapes) == 2
    assert "Tiny" in shapes and "huge" not in shapes and 3 not in shapes
    assert shapes["tiny"] is Small


def test_an_unknown_name_is_named_with_a_close_match_and_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown shape 'smal'\. Did you mean 'small'\? Known "
                       r"shape names: large, small, tiny\.$"):  # fmt: skip
        _registry().get("smal")
    with pytest.raises(ValueError, match=r"Unknown shape 'circle'\. Known shape names"):
        _registry()["circle"]


def test_get_makes_from_a_name_or_config_and_passes_instances_through():
    shapes = _registry()
    assert shapes.get(None) is None
    assert type(shapes.get("tiny")) is Small
    made = shapes.get({"class_name": "large", "config": {"size": 3}})
    assert type(made) is Large and made.size == 3
    assert shapes.get(made) is made
    with pytest.raises(ValueError, match="'class_name'"):
        shapes.get({"config": {}})
    with pytest.raises(ValueError, match="not a shape"):
        shapes.get(lambda: 3)
    with pytest.raises(ValueError, match="Cannot interpret 3 as shape"):
        shapes.get(3)


def test_serialize_is_the_inverse_of_get():
    shapes = _registry()
    for name in shapes.names():
        made = shapes.get(name)
        assert type(shapes.get(shapes.serialize(made))) is type(made)
    assert shapes.serialize(Large(5)) == "large"  # its exact class, not its base's entry
    assert shapes.serialize(Small) == "small" and shapes.serialize("TINY") == "small"
    assert shapes.serialize(None) is None
    with pytest.raises(ValueError, match="not a registered shape"):
        shapes.serialize(Base())


def test_a_description_registry_returns_its_entries():
    sizes = Registry("size", {"a4": (210, 297), "a-5": (148, 210)}, instantiate=False)
    assert sizes.get("A4") == (210, 297) and sizes.get("a_5") == (148, 210)
    assert sizes.serialize(sizes.get("a-5")) == "a-5"
    with pytest.raises(ValueError, match="Cannot interpret"):
        sizes.get({"class_name": "a4"})


def test_register_and_unregister():
    shapes = _registry()

    class Round(Base):
        pass

    assert shapes.register("round", Round, aliases=("circle",)) is Round
    assert type(shapes.get("circle")) is Round and shapes.serialize(Round()) == "round"
    for taken in ("small", "tiny", "large"):
        with pytest.raises(ValueError, match="is taken"):
            shapes.register(taken, Round)
    with pytest.raises(ValueError, match="lower case"):
        shapes.register("Oval", Round)
    with pytest.raises(ValueError, match="class or factory"):
        shapes.register("oval", 3)
    assert shapes.unregister("round") is Round
    assert "circle" not in shapes and "round" not in shapes
    with pytest.raises(ValueError, match="No shape is registered as 'round'"):
        shapes.unregister("round")
    with pytest.raises(ValueError, match="unknown shape 'oval'"):
        Registry("shape", {"small": Small}, aliases={"egg": "oval"})


MAKERS = [
    losses.LOSSES,
    penalties.PENALTIES,
    constraints.CONSTRAINTS,
    augment.AUGMENTATIONS,
    optimizers.OPTIMIZERS,
    conditioning.GENERATOR_CONDITIONINGS,
    conditioning.CRITIC_CONDITIONINGS,
]
DESCRIPTIONS = [blocks.BLOCKS, sources.SOURCES, classifier.EVALUATORS]


@pytest.mark.parametrize("registry", MAKERS, ids=lambda r: r.concept)
def test_every_made_object_serializes_to_a_name_that_makes_its_class(registry):
    for name in registry.names():
        made = registry.get(name)
        again = registry.get(registry.serialize(made))
        assert type(again) is type(made), name
        if isinstance(registry[name], type):
            assert registry.serialize(made) == registry.resolve(name)


def test_schedules_serialize_by_class():
    schedule = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=10)
    assert optimizers.SCHEDULES.serialize(schedule) == "cosine_decay"


@pytest.mark.parametrize("registry", DESCRIPTIONS, ids=lambda r: r.concept)
def test_every_description_serializes_to_its_own_name(registry):
    for name in registry:
        assert registry.serialize(registry.get(name)) == name
    with pytest.raises(ValueError, match=f"Unknown {registry.concept} 'nonesuch'"):
        registry.get("nonesuch")


def test_an_evaluators_name_is_its_registry_name():
    for name, spec in classifier.EVALUATORS.entries.items():
        assert spec.name == name
    assert classifier.spec_for("fashion_mnist") is classifier.EVALUATORS["fashion_mnist-v2"]


def test_every_class_of_the_gin_registries_is_a_configurable():
    config.register()
    expected = set()
    for registry, _ in config.GIN_REGISTRIES:
        expected |= {
            entry.__name__ for entry in registry.entries.values() if isinstance(entry, type)
        }
    assert {"WeightClip", "GradientPenalty", "R1Penalty", "DraganPenalty", "DiffAugment", "ADA",
            "Adam", "AdamW", "RMSprop", "SGD", "CosineDecay"} <= expected  # fmt: skip
    assert expected <= set(config.CONFIGURABLES)


def _run(code: str, fresh: bool = False) -> subprocess.CompletedProcess:
    return prestarted.run(["-c", code], cwd=REPO, timeout=300, fresh=fresh)


def test_a_class_registered_as_a_penalty_is_a_gin_configurable():
    # In a process of its own: gin's registrations are for the life of the process.
    code = """
import gin
from ganpipe import config, penalties

class Scaled(penalties.GradientPenalty):
    pass

penalties.PENALTIES.register("scaled", Scaled)
config.parse(["wgan_gp.gin"], ["train.penalty = @Scaled()", "Scaled.weight = 3.0"])
made = config.train_setting("penalty")
assert type(made) is Scaled and made.weight == 3.0, made
print("OK")
"""
    result = _run(code)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]


def test_the_registry_and_the_validator_import_nothing_heavy():
    result = _run(
        "import sys, ganpipe.registry, ganpipe.validate\n"
        "heavy = {'tensorflow', 'keras', 'numpy', 'jax', 'gin'} & set(sys.modules)\n"
        "assert not heavy, heavy",
        fresh=True,  # what a fresh interpreter imports
    )
    assert result.returncode == 0, result.stderr[-3000:]
