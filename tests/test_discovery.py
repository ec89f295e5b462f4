"""New-class discovery on real clips: a demo topic left out of the taxonomy while every other
topic is labelled comes back from mining as a proposal made of that topic.

Runs the real pipeline (decode, EfficientNet-Lite0, the default codes, mining) on a small demo corpus."""
from collections import Counter

import pytest
from django.db import transaction

from labeling.models import Annotation, Label, MiningRun, Proposal, TaxonomyEvent, Video
from labeling.services import mining, taxonomy
from labeling.services.annotations import videos_annotate
from labeling.services.hash_training import hash_model_refit
from labeling.services.ingest import ingest_batch_create, video_ingest_path
from labeling.services.processing import video_process
from ml.demo import TOPICS, build_demo_corpus, read_truth

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
CLIPS_PER_TOPIC = 20  # fewer, and most clips of a topic have no mutual neighbours within the bound
MIN_SHARE = 0.8


def test_every_left_out_topic_is_proposed(tmp_path, settings, django_user_model):
    settings.CLIPMINE_HASH_FIT_MIN = 2
    owner = django_user_model.objects.create_user("olga")
    rows = read_truth(build_demo_corpus(tmp_path / "demo", clips_per_topic=CLIPS_PER_TOPIC))
    batch = ingest_batch_create(source=Video.Source.DEMO)
    topic_of = {}
    for path, topic in rows:
        video = video_ingest_path(path=path, batch=batch).video
        video_process(video_id=video.pk)
        topic_of[video.pk] = topic
    assert Video.objects.filter(status=Video.Status.READY).count() == len(rows)
    codes = hash_model_refit()
    assert codes.method in codes.selection["scores"]  # chosen by auto's measurement

    shares = {}
    for left_out in TOPICS:
        with transaction.atomic():
            for topic in TOPICS:
                if topic != left_out:
                    label = taxonomy.label_create(name=topic, actor=owner)
                    members = [pk for pk, t in topic_of.items() if t == topic]
                    videos_annotate(video_ids=members, label=label, annotator=owner, source="manual")
            run = mining.mining_run_execute(run_id=mining.mining_run_start(trigger=MiningRun.Trigger.COMMAND).pk)
            assert run.status == MiningRun.Status.COMPLETE, run.error
            shares[left_out] = max(
                (_share(p, topic_of, left_out) for p in Proposal.objects.filter(cluster__run=run)), default=0.0)
            transaction.set_rollback(True)  # the next topic starts from an empty taxonomy
    assert not Label.objects.exists() and not Annotation.objects.exists() and not TaxonomyEvent.objects.exists()
    assert min(shares.values()) >= MIN_SHARE, shares


def _share(proposal: Proposal, topic_of: dict[int, str], topic: str) -> float:
    """Share of the proposal's members that come from `topic`."""
    counts = Counter(topic_of[pk] for pk in proposal.cluster.members.values_list("pk", flat=True))
    return counts[topic] / sum(counts.values())
