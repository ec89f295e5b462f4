"""Fixtures shared by tests/ml: real features of a small demo corpus, built once per session."""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class RealFeatures:
    features: np.ndarray  # (n, 1280) float32, EfficientNet-Lite0 pooled over keyframes
    labels: np.ndarray    # (n,) str, the demo topic of each clip
    codes: np.ndarray     # (n, 8) uint8, ITQ 64-bit codes fitted on these features


@pytest.fixture(scope="session")
def real_features(tmp_path_factory) -> RealFeatures:
    """48 demo clips (6 per topic, 8 topics) through the real pipeline: decode, CNN, ITQ.

    About 12 s on 2 cores; everything lives in the session's tmp folder.
    """
    import torch

    from ml.demo import build_demo_corpus, read_truth
    from ml.features import FeatureExtractor
    from ml.frames import decode_video
    from ml.hashing import ITQHasher

    rows = read_truth(build_demo_corpus(tmp_path_factory.mktemp("demo"), clips_per_topic=6))
    # Each decode runs in its own child process, so threads overlap them.
    with ThreadPoolExecutor(max_workers=2) as pool:
        frames = list(pool.map(lambda row: decode_video(row[0]).frames, rows))
    extractor = FeatureExtractor()
    # One torch thread: on a loaded 2-core machine two spin-waiting threads made each clip ~1.5 s
    # instead of ~40 ms.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        features = np.stack([extractor.video_feature(f) for f in frames])
    finally:
        torch.set_num_threads(threads)
    labels = np.array([label for _, label in rows])
    return RealFeatures(features, labels, ITQHasher(n_bits=64).fit(features).encode(features))
