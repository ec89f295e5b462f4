"""Mining runs on synthetic clustered codes: clusters, members, proposals, run lifecycle."""
import numpy as np
import pytest

from labeling.models import Annotation, Cluster, MiningRun, Proposal, VideoCode
from labeling.selectors.topics import cluster_cards, latest_complete_run
from labeling.services import mining, taxonomy
from labeling.services.annotations import videos_annotate
from labeling.services.proposals import proposal_reject
from tests.factories import HashModelFactory, VideoFactory

pytestmark = pytest.mark.django_db
GROUP = 12


def planted_codes(n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """n_groups tight groups of 64-bit codes: a random centre with up to 3 bits flipped."""
    centres = rng.integers(0, 2, size=(n_groups, 64))
    bits = np.repeat(centres, GROUP, axis=0)
    for row in bits:
        row[rng.choice(64, size=rng.integers(0, 4), replace=False)] ^= 1
    return np.packbits(bits.astype(np.uint8), axis=1)


@pytest.fixture
def corpus():
    """Three planted topics of GROUP ready videos each, with codes of an active hash model."""
    model = HashModelFactory()
    codes = planted_codes(3, np.random.default_rng(7))
    videos = VideoFactory.create_batch(len(codes))
    VideoCode.objects.bulk_create(VideoCode(video=v, hash_model=model, code=c.tobytes()) for v, c in zip(videos, codes))
    return [videos[g * GROUP:(g + 1) * GROUP] for g in range(3)]


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("olga")


def mine(trigger=MiningRun.Trigger.COMMAND) -> MiningRun:
    run = mining.mining_run_start(trigger=trigger)
    return mining.mining_run_execute(run_id=run.pk)


def member_sets(run: MiningRun) -> list[set[int]]:
    return [set(c.members.values_list("pk", flat=True)) for c in run.clusters.all()]


def test_a_run_finds_the_planted_topics_with_medoids_and_distances(corpus):
    run = mine()
    assert run.status == MiningRun.Status.COMPLETE, run.error
    assert sorted(map(frozenset, member_sets(run)), key=min) == [frozenset(v.pk for v in g) for g in corpus]
    assert run.stats["n_codes"] == 3 * GROUP and run.code_version and run.params["k"] >= 2
    for cluster in run.clusters.all():
        assert cluster.medoid in cluster.members.all()
        assert 0 < cluster.cohesion <= 1
        assert cluster.clustermember_set.get(video=cluster.medoid).distance == 0
        assert max(cluster.clustermember_set.values_list("distance", flat=True)) <= 6


def test_unexplained_topics_become_proposals_and_labelled_ones_do_not(corpus, owner):
    cat = taxonomy.label_create(name="cat", actor=owner)
    videos_annotate(video_ids=[v.pk for v in corpus[0]], label=cat, annotator=owner, source="manual")
    run = mine()
    proposed = [set(p.cluster.members.values_list("pk", flat=True)) for p in Proposal.objects.filter(cluster__run=run)]
    assert sorted(proposed, key=min) == [{v.pk for v in corpus[1]}, {v.pk for v in corpus[2]}]
    proposal = Proposal.objects.filter(cluster__run=run).first()
    assert proposal.nearest_labels[0]["name"] == "cat" and 0 <= proposal.nearest_labels[0]["similarity"] <= 1
    assert proposal.evidence["labelled_fraction"] == 0


def test_a_rejected_cluster_is_not_proposed_again_and_open_ones_are_superseded(corpus, owner):
    first = mine()
    rejected, kept_open = list(Proposal.objects.filter(cluster__run=first))[:2]
    proposal_reject(proposal=rejected, actor=owner, note="noise")
    second = mine()
    again = [set(p.cluster.members.values_list("pk", flat=True)) for p in Proposal.objects.filter(cluster__run=second)]
    assert set(rejected.cluster.members.values_list("pk", flat=True)) not in again
    assert len(again) == 2
    kept_open.refresh_from_db()
    assert kept_open.status == Proposal.Status.SUPERSEDED


def test_pages_keep_showing_the_last_complete_run_while_a_new_one_runs(corpus):
    done = mine()
    running = mining.mining_run_start(trigger=MiningRun.Trigger.MANUAL)
    assert running.status == MiningRun.Status.RUNNING
    assert latest_complete_run() == done
    assert mining.mining_run_start(trigger=MiningRun.Trigger.MANUAL) is None  # one at a time


def test_a_failed_run_is_recorded_and_leaves_the_previous_one_in_place(corpus):
    done = mine()
    VideoCode.objects.filter(pk=VideoCode.objects.first().pk).update(code=b"\x00")  # a corrupt 1-byte code
    failed = mine()
    assert failed.status == MiningRun.Status.FAILED and failed.error
    assert latest_complete_run() == done and not failed.clusters.exists()


def test_the_schedule_mines_only_when_codes_or_taxonomy_changed(corpus, owner):
    mine()
    assert mining.mining_run_start(trigger=MiningRun.Trigger.SCHEDULE, if_changed=True) is None
    taxonomy.label_create(name="new", actor=owner)
    assert mining.mining_run_start(trigger=MiningRun.Trigger.SCHEDULE, if_changed=True) is not None


def test_cards_report_dominant_label_and_purity_against_current_annotations(corpus, owner):
    run = mine()
    cat, dog = (taxonomy.label_create(name=n, actor=owner) for n in ("cat", "dog"))
    group = corpus[0]
    videos_annotate(video_ids=[v.pk for v in group[:6]], label=cat, annotator=owner, source="manual")
    videos_annotate(video_ids=[v.pk for v in group[6:8]], label=dog, annotator=owner, source="manual")
    cluster = Cluster.objects.get(run=run, members=group[0])
    card = cluster_cards([cluster])[0]
    assert (card.dominant_label, card.labelled) == ("cat", 8)
    assert card.purity == pytest.approx(6 / 8)
    assert Annotation.objects.filter(is_current=True).count() == 8


def test_mining_without_codes_is_a_clear_error():
    with pytest.raises(mining.MiningError, match="ingest some videos"):
        mining.mining_run_start(trigger=MiningRun.Trigger.COMMAND)
