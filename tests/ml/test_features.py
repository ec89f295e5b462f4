import cv2
import numpy as np
import pytest
import skimage.data

from ml.features import FEATURE_DIM, FeatureExtractor, keyframe_slots


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor()


def _frame(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return cv2.resize(image[..., :3], (224, 224), interpolation=cv2.INTER_AREA)


def test_video_feature_is_unit_length_and_deterministic(extractor):
    frames = np.stack([_frame(skimage.data.chelsea()), _frame(skimage.data.coffee())])
    a = extractor.video_feature(frames)
    b = extractor.video_feature(frames)
    assert a.shape == (FEATURE_DIM,) and a.dtype == np.float32
    assert np.isclose(np.linalg.norm(a), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_pretrained_features_see_content(extractor):
    """A mirrored, brightened photo stays nearer to itself than to a different photo."""
    cat = _frame(skimage.data.chelsea())
    altered = np.clip(cat[:, ::-1].astype(int) + 30, 0, 255).astype(np.uint8)
    rocket = _frame(skimage.data.rocket())
    f = [extractor.video_feature(x[None]) for x in (cat, altered, rocket)]
    assert f[0] @ f[1] > f[0] @ f[2] + 0.1


def test_rejects_wrong_input_shape(extractor):
    with pytest.raises(ValueError, match="224"):
        extractor.image_features(np.zeros((1, 100, 100, 3), np.uint8))


def test_weights_are_ImageNet_weights_not_random(extractor):
    # A random init would give near-identical features for any two inputs after pooling.
    flat = np.full((1, 224, 224, 3), 128, np.uint8)
    cat = _frame(skimage.data.chelsea())[None]
    a, b = extractor.video_feature(flat), extractor.video_feature(cat)
    assert a @ b < 0.9


def test_keyframe_slots_spread_over_the_video_and_leave_missing_ones_empty():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(9, FEATURE_DIM)).astype(np.float32)
    slots = keyframe_slots(images, slots=4).reshape(4, FEATURE_DIM)
    assert slots.dtype == np.float16
    unit = images / np.linalg.norm(images, axis=1, keepdims=True)
    for slot, index in enumerate([0, 3, 5, 8]):  # first, last and evenly between
        np.testing.assert_allclose(slots[slot], unit[index], atol=2e-3)

    two = keyframe_slots(images[:2], slots=4).reshape(4, FEATURE_DIM)
    np.testing.assert_allclose(two[:2], unit[:2], atol=2e-3)
    assert not two[2:].any()  # no keyframe there
