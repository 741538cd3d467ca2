"""Weight clipping: formula, validation and the constraint registry (penalties are tested in
test_penalties.py)."""

import numpy as np
import pytest

from ganpipe import constraints


def test_weight_clip_clips_to_interval():
    clip = constraints.WeightClip(0.01)
    values = np.array([-1.0, -0.01, -0.005, 0.0, 0.003, 0.5], dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(clip(values)),
        np.array([-0.01, -0.01, -0.005, 0.0, 0.003, 0.01], dtype=np.float32),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("bad", [0.0, -0.01, float("nan"), float("inf"), "0.01"])
def test_weight_clip_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="clip_value"):
        constraints.WeightClip(bad)


@pytest.mark.parametrize("name", ["weight_clip", "clip", "Weight-Clipping"])
@pytest.mark.parametrize("get", [constraints.get_constraint, constraints.get])
def test_registry_round_trip(get, name):
    made = get(name)
    assert isinstance(made, constraints.WeightClip)
    assert get(made) is made
    assert get(None) is None
    configured = get({"class_name": name, "config": {"clip_value": 0.05}})
    assert isinstance(configured, constraints.WeightClip) and configured.clip_value == 0.05


def test_unknown_names_list_known_ones():
    with pytest.raises(ValueError, match="Unknown constraint 'clamp'.*weight_clip"):
        constraints.get_constraint("clamp")
