"""Management commands as an operator runs them: ingest, evaluate, rebuild_index, demo."""
import io
import itertools
import json

import pytest
from django.core.management import CommandError, call_command

from labeling import storage
from labeling.models import HashModel, IndexSnapshot, ModelVersion, Video
from labeling.services import taxonomy, training
from labeling.services.annotations import videos_annotate
from ml.demo import build_demo_corpus, read_truth
from ml.evaluation import MAP_CONVENTIONS
from ml.reposts import KINDS
from tests.factories import VideoFactory
from tests.videos import write_clip

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_ingest_walks_folders_recursively_and_summarises(tmp_path):
    (tmp_path / "in" / "deeper").mkdir(parents=True)
    write_clip(tmp_path / "in" / "a.mp4", seed=1)
    write_clip(tmp_path / "in" / "deeper" / "b.mp4", seed=2)
    (tmp_path / "in" / "deeper" / "copy of a.mp4").write_bytes((tmp_path / "in" / "a.mp4").read_bytes())
    (tmp_path / "in" / "empty.mp4").write_bytes(b"")
    (tmp_path / "in" / ".hidden.mp4").write_bytes(b"skipped: dot files are not ingested")

    out = run("ingest", str(tmp_path / "in"), "--inline")

    assert "4 files: 3 accepted, 1 duplicate, 0 refused" in out
    assert "processed: 2 ready, 1 rejected, 0 failed" in out
    assert "rejected empty.mp4: The file is empty." in out
    assert sorted(Video.objects.values_list("original_name", "status")) == [
        ("a.mp4", "ready"), ("b.mp4", "ready"), ("empty.mp4", "rejected")]


def test_ingest_twice_adds_nothing(tmp_path):
    clip = write_clip(tmp_path / "a.mp4")
    run("ingest", str(clip))
    out = run("ingest", str(clip))
    assert "1 files: 0 accepted, 1 duplicate, 0 refused" in out
    assert Video.objects.count() == 1


def test_ingest_of_a_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file or folder"):
        run("ingest", str(tmp_path / "nowhere"))
    assert Video.objects.count() == 0


@pytest.fixture
def truth_csv(tmp_path):
    """Two labels, three clips each: the same moving texture cut to different lengths."""
    lines = ["path,label"]
    for label, seed in (("red", 1), ("blue", 2)):
        for frames in (24, 30, 36):
            write_clip(tmp_path / f"{label}-{frames}.mp4", seed=seed, frames=frames)
            lines.append(f"{label}-{frames}.mp4,{label}")
    (tmp_path / "truth.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "truth.csv"


def test_evaluate_ingests_what_is_missing_and_writes_json(tmp_path, truth_csv, settings):
    settings.CLIPMINE_MINING_MIN_SIZE = 3  # topics of three clips
    # Fitted codes, as a worker would fit them: the bootstrap LSH model is centred on the first
    # video, whose own code then carries no information.
    settings.CLIPMINE_HASH_FIT_MIN = 6
    write_clip(tmp_path / "already.mp4", seed=1, frames=24)  # same bytes as red-24: matched by hash
    run("ingest", str(tmp_path / "already.mp4"), "--inline")

    out = run("evaluate", "--truth", str(truth_csv), "--json", str(tmp_path / "report.json"))

    assert Video.objects.filter(status=Video.Status.READY).count() == 6
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["videos"], report["topics"], report["skipped"]) == (6, 2, 0)
    assert report["index"]["kind"] == "exact"
    rows = {row["representation"].split(":")[0].split(" (")[0]: row for row in report["rows"]}
    assert rows["float features"]["bytes_per_video"] == 1280 * 4
    assert rows["stored codes"]["bytes_per_video"] == 8  # 64 bits by default
    stored = [r["representation"] for r in report["rows"] if r["representation"].startswith("stored codes")]
    assert len(stored) == 2 and stored[1] == f"{stored[0]}, asymmetric"  # as the app searches
    assert "fitting a new hash model first" in out
    assert {r["bytes_per_video"] for r in report["rows"]} >= {4, 8, 16}
    # Clips of one texture are each other's nearest neighbours in feature space.
    assert rows["float features"]["map@10"] > 0.9
    assert all(0 <= r["map@10"] <= 1 and 0 <= r["map@100"] <= 1 for r in report["rows"])
    # Both conventions, named alike in the JSON and the table; with k above the other 5 videos,
    # every relevant one is retrieved and the two agree.
    assert report["map_conventions"] == MAP_CONVENTIONS
    assert all(r[f"map@{k}_retrieved"] == r[f"map@{k}"] for r in report["rows"] for k in (10, 100))
    assert "mAP@k_retrieved" in out and "@100" in out and "float features" in out
    clusters = report["clusters"]
    assert (clusters["topics"], clusters["clustered"], clusters["purity"], clusters["nmi"]) == (2, 1.0, 1.0, 1.0)
    assert "purity 1.0, NMI 1.0" in out


def test_evaluate_refuses_a_truth_file_without_shared_labels(tmp_path):
    write_clip(tmp_path / "a.mp4", seed=1)
    write_clip(tmp_path / "b.mp4", seed=2)
    (tmp_path / "truth.csv").write_text("path,label\na.mp4,x\nb.mp4,y\n")
    with pytest.raises(CommandError, match="no label shared"):
        run("evaluate", "--truth", str(tmp_path / "truth.csv"))


def test_evaluate_names_the_bad_line_of_a_truth_file(tmp_path):
    (tmp_path / "truth.csv").write_text("path,label\na.mp4\n")
    with pytest.raises(CommandError) as error:
        run("evaluate", "--truth", str(tmp_path / "truth.csv"))
    assert str(error.value).count("truth.csv") == 1 and "truth.csv:2" in str(error.value)


def test_evaluate_reposts_and_the_classifier_row(tmp_path, settings, django_user_model):
    """Reposts of demo clips query the truth set only; the classifier's output is a row once a
    model is published. About 30 s: 16 clips and 18 reposts go through the pipeline."""
    settings.DATA_DIR = tmp_path / "data"  # the reposts are written under it
    settings.CLIPMINE_RETRAIN_EVERY_LABELS = 10_000  # the test trains by hand
    truth = build_demo_corpus(tmp_path / "demo", clips_per_topic=2)

    out = run("evaluate", "--truth", str(truth), "--reposts", "3", "--json", str(tmp_path / "report.json"))

    report = json.loads((tmp_path / "report.json").read_text())
    reposts = report["reposts"]
    assert (reposts["originals"], reposts["made"], reposts["skipped"]) == (3, 18, 0)
    assert len(list((tmp_path / "data" / "reposts").glob("*/*"))) == 18
    # The reposts are videos now, but not items of the mAP set.
    assert (report["videos"], Video.objects.filter(status=Video.Status.READY).count()) == (16, 16 + 18)
    assert [r["representation"] for r in reposts["rows"]] == [r["representation"] for r in report["rows"]]
    for row in reposts["rows"]:
        assert list(row["top1"]) == [*KINDS, "all"] and all(0 <= rate <= 1 for rate in row["top1"].values())
        assert all(1 <= rank <= 16 for rank in row["mean_rank"].values())
    assert "top-1 rate of reposts" in out and "no published classifier" in out
    assert not any(r["representation"].startswith("classifier") for r in report["rows"])
    # Nothing is labelled yet: every truth video is unseen by training.
    assert all(r[f"unseen_{key}"] == r[key] for r in report["rows"] for key in ("map@10", "map@10_retrieved"))
    assert report["storage"] == {"code": 8, "database_code_column": 8.0, "index_snapshot": None,
                                 "float_features": 5120}

    owner = django_user_model.objects.create_user("olga")
    by_sha = dict(Video.objects.values_list("sha256", "pk"))
    for name, paths in itertools.groupby(sorted(read_truth(truth), key=lambda row: row[1]), key=lambda row: row[1]):
        label = taxonomy.label_create(name=name, actor=owner)
        videos_annotate(video_ids=[by_sha[storage.file_sha256(p)] for p, _ in paths], label=label, annotator=owner,
                        source="manual")
    version = training.model_train(version_id=training.training_claim(trigger=ModelVersion.Trigger.MANUAL).pk)
    assert version.status == ModelVersion.Status.PUBLISHED, version.error

    out = run("evaluate", "--truth", str(truth), "--reposts", "3", "--deep", "--json", str(tmp_path / "report.json"))

    report = json.loads((tmp_path / "report.json").read_text())
    assert Video.objects.count() == 16 + 18  # nothing new: the same reposts, byte for byte
    deep = {r["representation"]: r for r in report["rows"] if r["representation"].startswith("Deep")}
    assert sorted(deep) == sorted(f"Deep {bits} bits, {how}, fitted here" for bits in (32, 64, 128)
                                  for how in ("no labels", "16 labels"))
    assert {r["bytes_per_video"] for r in deep.values()} == {4, 8, 16}
    assert all("unseen_map@10" not in r for r in report["rows"])  # all 16 are labelled now
    classifier = [r for r in report["rows"] if r["representation"].startswith("classifier output")]
    assert len(classifier) == 1 and classifier[0]["bytes_per_video"] == 8 * 4  # eight topics, float32
    assert 0 <= classifier[0]["map@10"] <= 1
    assert report["reposts"]["rows"][-1]["representation"] == classifier[0]["representation"]
    assert "no published classifier" not in out


def test_evaluate_refuses_a_negative_repost_count(truth_csv):
    with pytest.raises(CommandError, match="--reposts"):
        run("evaluate", "--truth", str(truth_csv), "--reposts", "-1")


def test_evaluate_needs_other_videos_to_fit_deep_codes_without_the_truth_set(truth_csv):
    with pytest.raises(CommandError, match="no other videos to fit deep codes on"):
        run("evaluate", "--truth", str(truth_csv), "--deep-without-truth")


def test_rebuild_index_indexes_every_ready_video(tmp_path):
    assert "No hash model yet" in run("rebuild_index")
    for seed in range(3):
        write_clip(tmp_path / f"{seed}.mp4", seed=seed)
    run("ingest", str(tmp_path), "--inline")
    out = run("rebuild_index")
    snapshot = IndexSnapshot.objects.get()
    assert snapshot.size == 3 and snapshot.hash_model == HashModel.objects.get(status=HashModel.Status.ACTIVE)
    assert "3 codes, exact search" in out


def test_demo_refuses_topics_of_one_clip(tmp_path):
    with pytest.raises(CommandError, match="at least 2"):
        run("demo", "--out", str(tmp_path), "--clips-per-topic", "1")


def test_simulate_runs_the_loop_with_an_oracle_and_writes_the_curve(tmp_path):
    lines = ["path,label"]
    for label, seed in (("red", 1), ("blue", 2)):
        for frames in (24, 26, 28, 30, 32, 34):
            write_clip(tmp_path / f"{label}-{frames}.mp4", seed=seed, frames=frames)
            lines.append(f"{label}-{frames}.mp4,{label}")
    (tmp_path / "truth.csv").write_text("\n".join(lines) + "\n")
    run("ingest", str(tmp_path), "--inline")
    stranger = VideoFactory()  # the oracle could not answer for it
    with pytest.raises(CommandError, match="1 ready videos that are not in"):
        run("simulate", "--truth", str(tmp_path / "truth.csv"))
    stranger.delete()

    out = run("simulate", "--truth", str(tmp_path / "truth.csv"), "--strategy", "margin", "--budget", "4",
              "--batch", "2", "--json", str(tmp_path / "curve.json"))

    report = json.loads((tmp_path / "curve.json").read_text())
    assert [row["labels"] for row in report["curve"]] == [2, 4]
    assert report["all_labels"]["labels"] == 12 - 2  # holdout: one of each label's six
    assert report["all_labels"]["accuracy"] == 1.0 and "95% of it first reached" in out
    from labeling.models import Annotation, ModelVersion

    assert Annotation.objects.filter(source="queue").count() == 4  # the oracle answered the queue
    # The ceiling's labels and model are rolled back: the database is where the loop left it.
    assert Annotation.objects.filter(is_current=True).count() == 2 + 4
    assert ModelVersion.objects.count() == len(report["curve"])
    assert ModelVersion.objects.get(status="published").pk == report["curve"][-1]["version"]
    assert sorted(p.name for p in storage.model_dir().iterdir()) == sorted(
        ModelVersion.objects.values_list("artefact", flat=True))
    with pytest.raises(CommandError, match="scratch"):
        run("simulate", "--truth", str(tmp_path / "truth.csv"))
