"""Similar videos: a Hamming shortlist re-ranked by the query's projection (labeling.selectors.similar)."""
import numpy as np
import pytest

from labeling.models import HashModel
from labeling.selectors.similar import similar_videos
from labeling.services.hashing import feature_store, video_code_write, write_artefact
from ml.features import FEATURE_DIM
from ml.hashing import ITQHasher, asymmetric_similarity, hamming_distances
from tests.factories import HashModelFactory, VideoFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def coded_videos():
    """40 ready videos with stored features and 16-bit codes of an active ITQ model: short codes,
    so many neighbours tie in Hamming distance and the two orders differ."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, FEATURE_DIM)).astype(np.float32)
    hasher = ITQHasher(n_bits=16).fit(X)
    model = HashModelFactory(method=HashModel.Method.ITQ, n_bits=16)
    write_artefact(model, hasher)
    model.save(update_fields=["artefact", "checksum"])
    videos = [VideoFactory() for _ in X]
    for video, x in zip(videos, X):
        feature_store().put(video.pk, x)
        video_code_write(video_id=video.pk, feature=x, model=model)
    return videos, X, hasher


def test_neighbours_come_in_asymmetric_order_with_their_hamming_distances(coded_videos):
    videos, X, hasher = coded_videos
    codes = hasher.encode(X)
    similarity = asymmetric_similarity(hasher.project(X[:1]), codes[1:])[0]
    expected = [videos[1 + j].pk for j in np.argsort(-similarity, kind="stable")[:10]]
    found = similar_videos(videos[0], k=10)
    assert [n.video.pk for n in found] == expected
    distances = hamming_distances(codes[0], codes)
    assert [n.distance for n in found] == [int(distances[videos.index(n.video)]) for n in found]
    assert [n.distance for n in found] != sorted(n.distance for n in found), "this data should reorder some"


def test_a_video_without_stored_features_gets_hamming_order(coded_videos):
    videos, X, hasher = coded_videos
    query = VideoFactory()  # coded, but its features were never stored (an older ingest)
    video_code_write(video_id=query.pk, feature=X[0] + 0.1, model=HashModel.objects.get(status=HashModel.Status.ACTIVE))
    found = similar_videos(query, k=10)
    assert len(found) == 10 and query.pk not in [n.video.pk for n in found]
    assert [n.distance for n in found] == sorted(n.distance for n in found)
