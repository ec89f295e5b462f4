"""Files the app reads back (a classifier, a hash model, a faiss index snapshot, the feature store)
are data, never code: each, swapped on disk for a pickle whose unpickling would create a marker
file, or for an .npz/.npy holding an object array, is refused with a clear error and the marker
never appears, whether or not the checksum recorded in the database matches. Through the app, a
swapped published model makes /api/predict fail cleanly, and a swapped index snapshot is not used:
similar videos are rebuilt from the database and stay right."""
import hashlib
import io
import pathlib
import pickle

import numpy as np
import pytest
from rest_framework.test import APIClient

from labeling import storage
from labeling.models import ModelVersion, Video, VideoCode
from labeling.selectors import similar
from labeling.services import hashing, inference, taxonomy
from labeling.services.hashing import feature_store, hasher_for, write_artefact
from labeling.services.index import index_snapshot_build
from ml.classifier import LinearClassifier, load_classifier, save_classifier
from ml.hashing import LSHHasher, load_hasher
from ml.index import HammingIndex, IndexChecksumError
from ml.store import FeatureStore
from tests.factories import HashModelFactory, VideoFactory, api_token

pytestmark = pytest.mark.django_db


class Touch:
    """Unpickled, it creates `marker`: what an attacker's code would do, without os.system."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture
def marker(tmp_path) -> pathlib.Path:
    return tmp_path / "unpickled-code-ran"


def evil_pickle(marker) -> bytes:
    return pickle.dumps(Touch(marker))


def evil_npz(marker, **arrays) -> bytes:
    """An .npz whose `arrays` sit beside an object array holding the payload (np.savez pickles it)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, payload=np.array([Touch(marker)], dtype=object))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_payloads_are_live(marker):
    """So that a marker that never appears means the loader refused, not that the payload was inert."""
    pickle.loads(evil_pickle(marker))
    assert marker.exists()
    marker.unlink()
    with np.load(io.BytesIO(evil_npz(marker)), allow_pickle=True) as npz:
        npz["payload"]
    assert marker.exists()


# --- each loader on its own --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pickle", "object array"])
@pytest.mark.parametrize("checksum_matches", [False, True])
def test_a_classifier_file_is_never_unpickled(tmp_path, marker, kind, checksum_matches):
    path = tmp_path / "model.npz"
    recorded = save_classifier(LinearClassifier().fit(np.eye(4), np.array([1, 1, 2, 2])), path)
    data = evil_pickle(marker) if kind == "pickle" else evil_npz(
        marker, format=np.str_("clipmine.linear-classifier"), format_version=np.int64(1))
    path.write_bytes(data)
    message = "not a classifier file|unexpected arrays" if checksum_matches else "checksum mismatch"
    with pytest.raises(ValueError, match=message):
        load_classifier(path, expected_sha256=sha256(data) if checksum_matches else recorded)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "lsh with an object array", "deep with an object array"])
def test_a_hash_model_file_is_never_unpickled(tmp_path, marker, kind):
    path = tmp_path / "hash.npz"
    path.write_bytes(evil_pickle(marker) if kind == "pickle" else evil_npz(
        marker, kind=np.str_(kind.split()[0]), n_bits=np.int64(64), hidden=np.int64(8)))
    with pytest.raises(ValueError, match="not a hasher file|malformed|unexpected arrays"):
        load_hasher(path)
    assert not marker.exists()


@pytest.mark.parametrize("checksum_matches", [False, True])
def test_the_active_hash_model_is_refused_when_swapped(marker, checksum_matches):
    model = HashModelFactory(method="lsh")
    write_artefact(model, LSHHasher(n_bits=64).fit(np.random.default_rng(0).normal(size=(8, 16))))
    path = storage.hash_model_dir() / model.artefact
    path.write_bytes(evil_pickle(marker))
    if checksum_matches:
        model.checksum = sha256(path.read_bytes())
    hashing._load.cache_clear()
    refused = (pytest.raises(ValueError, match="not a hasher file") if checksum_matches
               else pytest.raises(RuntimeError, match="does not match its recorded checksum"))
    with refused:
        hasher_for(model)
    assert not marker.exists()


@pytest.mark.parametrize("checksum_matches", [False, True])
def test_an_index_snapshot_is_never_unpickled(tmp_path, marker, checksum_matches):
    path = tmp_path / "index.faiss"
    recorded = HammingIndex.build(np.arange(3), np.zeros((3, 8), np.uint8), 64).save(path)
    path.write_bytes(evil_pickle(marker))
    if checksum_matches:  # faiss parses it: its own format, no pickle, so it cannot be read
        with pytest.raises(RuntimeError):
            HammingIndex.load(path, sha256(path.read_bytes()))
    else:
        with pytest.raises(IndexChecksumError, match="checksum mismatch"):
            HammingIndex.load(path, recorded)
    assert not marker.exists()


@pytest.mark.parametrize("swapped", ["data", "present"])
@pytest.mark.parametrize("kind", ["pickle", "object array"])
def test_a_feature_store_shard_is_never_unpickled(tmp_path, marker, swapped, kind):
    FeatureStore(tmp_path, dim=4).put(7, np.ones(4))
    shard = tmp_path / ("shard-000000.npy" if swapped == "data" else "shard-000000.present.npy")
    if kind == "pickle":
        shard.write_bytes(evil_pickle(marker))
    else:
        np.save(shard, np.array([Touch(marker)] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle|Python objects|object"):
        FeatureStore(tmp_path, dim=4).get([7])
    assert not marker.exists()


# --- through the app -------------------------------------------------------------------------------------

@pytest.fixture
def published(django_user_model, monkeypatch):
    """A ready video with features and a published two-class model that predicts on it."""
    from ml.features import FEATURE_DIM

    monkeypatch.setattr(inference, "_loaded", None)
    olga = django_user_model.objects.create_user("olga")
    cat, dog = (taxonomy.label_create(name=name, actor=olga) for name in ("cat", "dog"))
    rng = np.random.default_rng(0)
    clf = LinearClassifier().fit(rng.normal(size=(20, FEATURE_DIM)), np.array([cat.pk, dog.pk] * 10))
    storage.model_dir().mkdir(parents=True)
    checksum = save_classifier(clf, storage.model_dir() / "v1.npz")
    version = ModelVersion.objects.create(status=ModelVersion.Status.PUBLISHED, trigger="manual", artefact="v1.npz",
                                          checksum=checksum, classes=[cat.pk, dog.pk])
    video = VideoFactory()
    feature_store().put(video.pk, rng.normal(size=FEATURE_DIM))
    return version, video, APIClient(raise_request_exception=False)


def predict(client, video, token_of):
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(token_of)}")
    return client.post("/api/predict", {"video": video.pk}, format="json")


def swap_file(what: str, version, marker, monkeypatch) -> None:
    """A file predict reads becomes a pickle; the process starts afresh (nothing cached)."""
    model = storage.model_dir() / version.artefact
    path = storage.feature_store_root() / "shard-000000.npy" if what == "feature shard" else model
    path.write_bytes(evil_pickle(marker))
    if what == "model with its checksum recorded":
        ModelVersion.objects.filter(pk=version.pk).update(checksum=sha256(path.read_bytes()))
    monkeypatch.setattr(inference, "_loaded", None)


@pytest.mark.parametrize("what", ["model", "model with its checksum recorded", "feature shard"])
def test_predict_never_unpickles_a_swapped_file(published, user, marker, monkeypatch, what):
    version, video, client = published
    assert predict(client, video, user).json()["model_version"] == version.pk
    swap_file(what, version, marker, monkeypatch)
    response = predict(client, video, user)
    assert response.status_code >= 400 and "labels" not in response.content.decode()
    assert not marker.exists()


def test_predict_answers_a_swapped_model_with_a_clean_error(published, user, marker, monkeypatch):
    version, video, client = published
    swap_file("model", version, marker, monkeypatch)
    response = predict(client, video, user)
    assert response.status_code != 500 and response["Content-Type"] == "application/json"
    assert "detail" in response.json()


@pytest.fixture
def coded():
    """Four ready videos with known 64-bit codes of the active hash model, and an index snapshot."""
    model = HashModelFactory(checksum="a" * 64)
    videos = VideoFactory.create_batch(4)
    for video, bits in zip(videos, range(4)):  # 0, 1, 2 and 3 bits away from the first
        code = np.packbits(np.arange(64) < bits).tobytes()
        VideoCode.objects.create(video=video, hash_model=model, code=code)
    return model, videos, index_snapshot_build()


def neighbours(video: Video) -> list[tuple[int, int]]:
    similar._cache = None  # a new process: it starts from the snapshot on disk
    return [(n.video.pk, n.distance) for n in similar.similar_videos(video, k=3)]


@pytest.mark.parametrize("swap", ["pickle", "another valid index", "pickle with its checksum recorded"])
def test_a_swapped_index_snapshot_is_not_used(coded, marker, user, monkeypatch, swap):
    model, videos, snapshot = coded
    monkeypatch.setattr(similar, "_cache", None)
    right = [(videos[1].pk, 1), (videos[2].pk, 2), (videos[3].pk, 3)]
    assert neighbours(videos[0]) == right
    path = storage.index_dir() / snapshot.path
    if swap == "another valid index":  # well-formed, checksum aside: it would answer wrongly
        HammingIndex.build(np.array([v.pk for v in videos[::-1]]), np.zeros((4, 8), np.uint8), 64).save(path)
    else:
        path.write_bytes(evil_pickle(marker))
        if swap == "pickle with its checksum recorded":
            snapshot.checksum = sha256(path.read_bytes())
            snapshot.save()
    assert neighbours(videos[0]) == right
    similar._cache = None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    answer = client.get(f"/api/videos/{videos[0].pk}/similar/?k=3").json()
    assert [(n["video"]["id"], n["distance"]) for n in answer] == right
    assert not marker.exists()
