"""Inception FID/KID: the protocol's plumbing, and the skip message when weights are absent."""

import numpy as np
import pytest

from ganpipe.eval import inception


def test_missing_weights_raise_a_message_that_says_how_to_enable(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(inception.InceptionUnavailable, match="--inception_weights=PATH"):
        inception.load_inception(allow_download=False)
    with pytest.raises(inception.InceptionUnavailable, match="does not exist"):
        inception.load_inception(str(tmp_path / "nope.h5"))


@pytest.mark.slow
def test_protocol_features_and_scores_with_untrained_weights():
    # Untrained weights at the smallest input size: checks the tiling, resizing and scaling and
    # the metric wiring, not the numbers a real evaluation gives.
    model = inception.load_inception("random", input_size=75)
    rng = np.random.default_rng(0)
    gray = rng.uniform(size=(8, 28, 28, 1)).astype(np.float32)
    features = inception.inception_features(model, gray, batch_size=3)
    assert features.shape == (8, 2048) and np.all(np.isfinite(features))
    rgb = np.repeat(gray, 3, axis=-1)
    np.testing.assert_allclose(
        inception.inception_features(model, rgb), features, rtol=1e-4, atol=1e-5
    )
    scores = inception.inception_scores(model, gray, gray)
    assert scores["inception_fid"] == pytest.approx(0.0, abs=1e-3)
    other = inception.inception_scores(model, gray, np.zeros_like(gray))
    assert other["inception_fid"] > scores["inception_fid"]
