"""Database rows for tests that need many ready videos but not their pixels (those tests that
need real decoding use tests/videos.py and the processing service)."""
import factory

from labeling.models import Cluster, ClusterMember, HashModel, MiningRun, Video


class VideoFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Video

    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    file = factory.LazyAttribute(lambda v: f"videos/{v.sha256}")
    original_name = factory.Sequence(lambda n: f"clip-{n}.mp4")
    source = Video.Source.CLI
    size_bytes = 1000
    status = Video.Status.READY


class HashModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HashModel

    method = HashModel.Method.ITQ
    n_bits = 64
    status = HashModel.Status.ACTIVE


class MiningRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MiningRun

    hash_model = factory.SubFactory(HashModelFactory)
    status = MiningRun.Status.COMPLETE
    trigger = MiningRun.Trigger.COMMAND
    code_version = "test"


def cluster_of(run: MiningRun, videos: list[Video], rank: int = 1) -> Cluster:
    """A mined cluster with these members, the first one as medoid."""
    cluster = Cluster.objects.create(run=run, rank=rank, size=len(videos), cohesion=0.9, medoid=videos[0])
    ClusterMember.objects.bulk_create(ClusterMember(cluster=cluster, video=v, distance=i) for i, v in enumerate(videos))
    return cluster


def api_token(user) -> str:
    """A fresh API token of `user`, as `POST /api/token/` would issue it."""
    from knox.models import AuthToken

    return AuthToken.objects.create(user=user)[1]
