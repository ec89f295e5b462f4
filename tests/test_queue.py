"""The label queue: one annotator per video at a time, claims expire, labelled videos leave."""
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from labeling.models import QueueItem
from labeling.services import taxonomy
from labeling.services.annotations import video_annotate
from labeling.services.queue import queue_next, queue_release
from tests.concurrency import run_together
from tests.conftest import require
from tests.factories import VideoFactory


def fill_queue(n: int) -> list[QueueItem]:
    return [QueueItem.objects.create(video=VideoFactory(), score=float(n - i), strategy="margin") for i in range(n)]


@pytest.fixture
def people(django_user_model):
    return [django_user_model.objects.create_user(f"annotator-{i}") for i in range(3)]


@pytest.mark.django_db
def test_best_item_first_and_never_the_same_video_to_two_people(people):
    items = fill_queue(3)
    first, second = queue_next(user=people[0]), queue_next(user=people[1])
    assert (first, second) == (items[0], items[1])
    assert queue_next(user=people[0]) == items[0]  # a reload keeps one's place
    assert queue_next(user=people[2]) == items[2]
    assert queue_next(user=type(people[0]).objects.create_user("late")) is None


@pytest.mark.django_db
def test_an_expired_claim_returns_to_the_queue(people):
    item = fill_queue(1)[0]
    assert queue_next(user=people[0]) == item
    assert queue_next(user=people[1]) is None
    QueueItem.objects.filter(pk=item.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert queue_next(user=people[1]) == item
    item.refresh_from_db()
    assert item.claimed_by == people[1] and item.claimed_until > timezone.now()


@pytest.mark.django_db
def test_skipping_releases_the_claim_and_is_not_offered_again_to_the_skipper(people):
    items = fill_queue(2)
    assert queue_next(user=people[0]) == items[0]
    queue_release(user=people[0], video_id=items[0].video_id)
    assert queue_next(user=people[0], skip=frozenset({items[0].video_id})) == items[1]
    assert queue_next(user=people[1]) == items[0]


@pytest.mark.django_db
def test_a_labelled_video_leaves_the_queue(people):
    item = fill_queue(1)[0]
    cat = taxonomy.label_create(name="cat", actor=people[0])
    video_annotate(video=item.video, label=cat, annotator=people[0])
    assert not QueueItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_claimers_never_share_a_video(django_user_model):
    require(connection.vendor == "postgresql", "concurrent claims are tested against PostgreSQL (DATABASE_URL)")
    claimers, rounds = 12, 5
    fill_queue(claimers * rounds)
    users = [django_user_model.objects.create_user(f"c{i}") for i in range(claimers)]
    claimed: dict[int, list[int]] = {}

    def work(user):
        got = []
        for _ in range(rounds):
            item = queue_next(user=user)
            got.append(item.video_id)
            QueueItem.objects.filter(pk=item.pk).delete()  # labelled: the next call claims a new one
        claimed[user.pk] = got

    run_together(work, users)
    every = [v for got in claimed.values() for v in got]
    assert len(every) == claimers * rounds and len(set(every)) == len(every)


@pytest.mark.django_db
def test_undo_restores_the_previous_label_and_gives_the_video_back(people):
    from labeling.services.annotations import annotation_undo
    from labeling.services.queue import labelled_today

    items = fill_queue(2)
    cat, dog = (taxonomy.label_create(name=n, actor=people[0]) for n in ("cat", "dog"))
    video = items[0].video
    video_annotate(video=video, label=cat, annotator=people[1])  # someone labelled it before
    assert queue_next(user=people[0]) == items[1]
    video_annotate(video=video, label=dog, annotator=people[0])
    assert labelled_today(user=people[0]) == 1
    undone = annotation_undo(annotator=people[0])
    assert undone.label == dog and not undone.is_current
    assert video.annotations.get(is_current=True).label == cat  # the earlier label is back
    assert labelled_today(user=people[0]) == 0
    assert queue_next(user=people[0]).video == video  # next up again, for the one who undid it
    assert annotation_undo(annotator=people[0]) is None
