"""The label tree changes without losing work: every change is an event, annotations follow."""
import pytest

from labeling.models import Annotation, Label, TaxonomyEvent
from labeling.services import taxonomy
from labeling.services.annotations import cluster_bulk_label, video_annotate, videos_annotate
from labeling.services.taxonomy import TaxonomyError
from tests.factories import MiningRunFactory, VideoFactory, cluster_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("olga")


def label(name, owner, parent=None):
    return taxonomy.label_create(name=name, actor=owner, parent=parent)


def test_create_rename_move_are_events_and_bump_the_version(owner):
    animals = label("animals", owner)
    cat = label("cat", owner)
    v0 = taxonomy.taxonomy_version()
    taxonomy.label_rename(label=cat, name="  house   cat ", actor=owner)
    taxonomy.label_move(label=cat, parent=animals, actor=owner)
    cat.refresh_from_db()
    assert (cat.name, cat.parent) == ("house cat", animals)
    kinds = list(TaxonomyEvent.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == ["create", "create", "rename", "move"]
    rename = TaxonomyEvent.objects.get(kind="rename")
    assert (rename.before["name"], rename.after["name"], rename.actor) == ("cat", "house cat", owner)
    assert taxonomy.taxonomy_version() == v0 + 2


def test_names_are_unique_whatever_the_case_and_clean(owner):
    label("Cat", owner)
    with pytest.raises(TaxonomyError, match="already exists"):
        label("cat", owner)
    with pytest.raises(TaxonomyError, match="needs a name"):
        label("   ", owner)
    with pytest.raises(TaxonomyError, match="control"):
        label("bad\x00name", owner)
    assert Label.objects.count() == 1


def test_a_label_cannot_move_under_its_own_descendant(owner):
    a = label("a", owner)
    b = label("b", owner, parent=a)
    c = label("c", owner, parent=b)
    with pytest.raises(TaxonomyError, match="descendants"):
        taxonomy.label_move(label=a, parent=c, actor=owner)
    with pytest.raises(TaxonomyError, match="itself"):
        taxonomy.label_move(label=a, parent=a, actor=owner)


def test_annotations_follow_a_rename_and_a_merge_and_keep_what_was_chosen(owner):
    kitty, cat = label("kitty", owner), label("cat", owner)
    videos = VideoFactory.create_batch(3)
    videos_annotate(video_ids=[v.pk for v in videos[:2]], label=kitty, annotator=owner, source="manual")
    video_annotate(video=videos[2], label=cat, annotator=owner)
    child = label("kitten", owner, parent=kitty)

    taxonomy.label_rename(label=cat, name="cats", actor=owner)
    event = taxonomy.label_merge(source=kitty, target=cat, actor=owner)

    kitty.refresh_from_db()
    child.refresh_from_db()
    assert (kitty.status, kitty.merged_into_id) == ("merged", cat.pk)
    assert child.parent_id == cat.pk
    assert event.annotations_moved == 2 and event.target == cat
    assert Annotation.objects.filter(label=cat, is_current=True).count() == 3
    assert set(Annotation.objects.values_list("labelled_as__name", flat=True)) == {"kitty", "cats"}
    assert Annotation.objects.count() == 3  # none lost, none duplicated
    with pytest.raises(TaxonomyError, match="merged into"):
        taxonomy.label_rename(label=kitty, name="kitty2", actor=owner)
    # The merged name is free again for a new label.
    assert label("kitty", owner).status == "active"


def test_merging_a_parent_into_its_child_lifts_the_child(owner):
    root = label("root", owner)
    parent = label("vehicles", owner, parent=root)
    child = label("bikes", owner, parent=parent)
    taxonomy.label_merge(source=parent, target=child, actor=owner)
    child.refresh_from_db()
    assert child.parent == root


def test_split_moves_only_the_chosen_members(owner):
    animals = label("animals", owner)
    videos = VideoFactory.create_batch(5)
    videos_annotate(video_ids=[v.pk for v in videos], label=animals, annotator=owner, source="manual")
    cats, dogs = taxonomy.label_split(
        label=animals, parts=[("cats", [videos[0].pk, videos[1].pk]), ("dogs", [videos[2].pk])], actor=owner)
    current = dict(Annotation.objects.filter(is_current=True).values_list("video_id", "label__name"))
    assert current == {videos[0].pk: "cats", videos[1].pk: "cats", videos[2].pk: "dogs",
                       videos[3].pk: "animals", videos[4].pk: "animals"}
    assert cats.parent == animals and dogs.parent == animals
    split = TaxonomyEvent.objects.get(kind="split")
    assert split.annotations_moved == 3 and split.after["videos"]["cats"] == sorted([videos[0].pk, videos[1].pk])


def test_split_refuses_videos_that_are_not_members(owner):
    animals = label("animals", owner)
    stranger = VideoFactory()
    with pytest.raises(TaxonomyError, match="not labelled"):
        taxonomy.label_split(label=animals, parts=[("cats", [stranger.pk])], actor=owner)
    assert Label.objects.count() == 1  # the half-made split rolled back


def test_deprecated_labels_are_kept_but_not_offered(owner):
    old = label("old", owner)
    video = VideoFactory()
    video_annotate(video=video, label=old, annotator=owner)
    taxonomy.label_deprecate(label=old, actor=owner)
    with pytest.raises(TaxonomyError, match="no longer offered"):
        video_annotate(video=VideoFactory(), label=old, annotator=owner)
    assert Annotation.objects.get(video=video).label == old
    taxonomy.label_restore(label=old, actor=owner)
    assert video_annotate(video=VideoFactory(), label=old, annotator=owner)


def test_relabelling_keeps_history_and_the_same_label_twice_is_a_no_op(owner):
    a, b = label("a", owner), label("b", owner)
    video = VideoFactory()
    assert video_annotate(video=video, label=a, annotator=owner)
    assert not video_annotate(video=video, label=a, annotator=owner)
    assert video_annotate(video=video, label=b, annotator=owner)
    rows = list(Annotation.objects.filter(video=video).order_by("id").values_list("label__name", "is_current"))
    assert rows == [("a", False), ("b", True)]


def test_bulk_label_of_a_cluster_skips_the_excluded_and_records_the_source(owner):
    cat = label("cat", owner)
    videos = VideoFactory.create_batch(4)
    cluster = cluster_of(MiningRunFactory(), videos)
    changed = cluster_bulk_label(cluster=cluster, label=cat, annotator=owner, exclude=[videos[3].pk])
    assert changed == sorted(v.pk for v in videos[:3])
    rows = Annotation.objects.filter(is_current=True)
    assert set(rows.values_list("source", flat=True)) == {"cluster"}
    assert set(rows.values_list("cluster", flat=True)) == {cluster.pk}
    assert not Annotation.objects.filter(video=videos[3]).exists()
    with pytest.raises(TaxonomyError, match="not in this cluster"):
        cluster_bulk_label(cluster=cluster, label=cat, annotator=owner, exclude=[VideoFactory().pk])
