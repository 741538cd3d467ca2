"""Pixel scaling: uint8 -> value range (NumPy and TensorFlow give the same, exact numbers) and
generator outputs -> [0, 1]."""

import numpy as np
import pytest
import tensorflow as tf

from ganpipe.data.scaling import check_value_range, scale_uint8, to_unit_range

PIXELS = np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0), (-0.3, 2.7), (0, 255)])
def test_numpy_and_tensorflow_scale_alike(value_range):
    on_numpy = scale_uint8(PIXELS, value_range)
    on_tensor = scale_uint8(tf.constant(PIXELS), value_range)
    assert isinstance(on_numpy, np.ndarray) and on_numpy.dtype == np.float32
    assert isinstance(on_tensor, tf.Tensor) and on_tensor.dtype == tf.float32
    np.testing.assert_array_equal(on_numpy, on_tensor.numpy())
    low, high = np.float32(value_range[0]), np.float32(value_range[1])
    assert on_numpy.flat[0] == low and on_numpy.flat[-1] == high  # 0 and 255 land exactly


def test_the_usual_ranges_are_the_usual_formulas_bit_for_bit():
    x = PIXELS.astype(np.float64)
    np.testing.assert_array_equal(scale_uint8(PIXELS, (0, 1)), (x / 255.0).astype(np.float32))
    np.testing.assert_array_equal(
        scale_uint8(PIXELS, (-1, 1)), ((x - 127.5) / 127.5).astype(np.float32)
    )


@pytest.mark.parametrize("bad", [(1.0, 1.0), (1.0, -1.0)])
def test_an_empty_or_reversed_range_is_refused(bad):
    with pytest.raises(ValueError, match="value_range must be \\(low, high\\) with low < high"):
        check_value_range(bad)
    with pytest.raises(ValueError, match="value_range"):
        scale_uint8(PIXELS, bad)
    with pytest.raises(ValueError, match="value_range"):
        to_unit_range(np.zeros(3, np.float32), bad)


def test_to_unit_range_maps_the_range_onto_zero_one_and_clips():
    images = np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0], np.float32)
    out = to_unit_range(images, (-1.0, 1.0))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([0.0, 0.0, 0.5, 0.75, 1.0, 1.0], np.float32))


def test_to_unit_range_takes_tensors_and_16_bit_outputs():
    images = tf.constant([[-1.0, 0.0, 1.0]], tf.bfloat16)  # as under mixed precision
    out = to_unit_range(images, (-1, 1))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[0.0, 0.5, 1.0]], np.float32))


def test_scaling_round_trips_through_to_unit_range():
    # uint8 -> (-1, 1) -> [0, 1] is x / 255 up to float32 rounding.
    back = to_unit_range(scale_uint8(PIXELS, (-1.0, 1.0)), (-1.0, 1.0))
    np.testing.assert_allclose(back, PIXELS / 255.0, rtol=0, atol=1e-7)
