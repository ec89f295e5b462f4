"""clipmine's data. Writes go through labeling.services; reads through labeling.selectors."""
from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Video(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        READY = "ready"
        REJECTED = "rejected"  # the file is not a video we accept: the reason says why
        FAILED = "failed"  # our fault (a bug, a lost worker): retrying may help

    class Source(models.TextChoices):
        UPLOAD = "upload"
        API = "api"
        CLI = "cli"
        DEMO = "demo"

    sha256 = models.CharField(max_length=64, unique=True)
    # Relative to MEDIA_ROOT and chosen by us from the hash: a client's file name never is a path.
    file = models.CharField(max_length=200)
    original_name = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    size_bytes = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    status_reason = models.TextField(blank=True)
    container = models.CharField(max_length=16, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    width = models.IntegerField(null=True, blank=True)
    height = models.IntegerField(null=True, blank=True)
    frame_count = models.IntegerField(null=True, blank=True)
    preview = models.CharField(max_length=200, blank=True)
    processing_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.title or self.original_name or self.sha256[:12]

    @property
    def cover(self):
        return next((k for k in self.keyframes.all() if k.is_cover), None)


class Keyframe(models.Model):
    video = models.ForeignKey(Video, related_name="keyframes", on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField()
    timestamp_s = models.FloatField()
    image = models.CharField(max_length=200)
    is_cover = models.BooleanField(default=False)

    class Meta:
        ordering = ["video", "position"]
        constraints = [models.UniqueConstraint(fields=["video", "position"], name="keyframe_unique_position")]


class IngestBatch(models.Model):
    """One upload, API call or CLI run: what live progress is reported against."""

    source = models.CharField(max_length=16, choices=Video.Source.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class IngestItem(models.Model):
    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"
        DUPLICATE = "duplicate"
        REFUSED = "refused"  # refused before storing (too large, unreadable upload)

    batch = models.ForeignKey(IngestBatch, related_name="items", on_delete=models.CASCADE)
    video = models.ForeignKey(Video, null=True, blank=True, related_name="ingest_items", on_delete=models.CASCADE)
    original_name = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)


class HashModel(models.Model):
    """A fitted hasher. Codes of different hash models never meet in one index."""

    class Method(models.TextChoices):
        AUTO = "auto", "auto (measured at fit time)"  # a claim's until the fit has chosen
        ITQ = "itq", "PCA + ITQ"
        WITQ = "witq", "whitened PCA + ITQ"
        WITQ_2X = "witq-2x", "whitened PCA (2x bits directions) + ITQ"
        LSH = "lsh", "random-projection LSH"
        DEEP = "deep", "deep hashing"

    class Status(models.TextChoices):
        FITTING = "fitting"
        ACTIVE = "active"
        RETIRED = "retired"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        AUTO = "auto"  # the first videos, a grown corpus or a changed setting
        LABELS = "labels"  # enough new labels arrived (deep hashing learns from them)
        SCHEDULE = "schedule"
        MANUAL = "manual"
        API = "api"

    method = models.CharField(max_length=8, choices=Method.choices)
    n_bits = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FITTING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.AUTO)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                     on_delete=models.SET_NULL)
    artefact = models.CharField(max_length=200, blank=True)
    checksum = models.CharField(max_length=64, blank=True)
    fitted_on = models.PositiveIntegerField(default=0)
    labels_used = models.PositiveIntegerField(default=0)  # labelled videos among those fitted on
    label_mark = models.PositiveBigIntegerField(default=0)  # newest annotation id seen by the fit
    encoded = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=32, blank=True)
    progress = models.FloatField(default=0.0)
    fit_seconds = models.FloatField(null=True, blank=True)
    # For a method chosen by measurement (auto): the criterion, each candidate's score on the
    # held-back slice and its size (ml.hash_choice); empty when the method was asked for.
    selection = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="hashmodel_one_active"
            ),
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="fitting"), name="hashmodel_one_fitting"
            ),
        ]

    def __str__(self):
        return f"{self.get_method_display()} {self.n_bits} bits #{self.pk}"


class VideoCode(models.Model):
    video = models.ForeignKey(Video, related_name="codes", on_delete=models.CASCADE)
    hash_model = models.ForeignKey(HashModel, related_name="codes", on_delete=models.CASCADE)
    code = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["video", "hash_model"], name="videocode_unique")]


class IndexSnapshot(models.Model):
    """A faiss index written to disk; rebuildable at any time from VideoCode rows."""

    hash_model = models.ForeignKey(HashModel, related_name="snapshots", on_delete=models.CASCADE)
    path = models.CharField(max_length=200)
    checksum = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    max_code_id = models.BigIntegerField()
    kind = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]


class Label(models.Model):
    """A node of the label taxonomy. Merged labels stay as history and point at their target."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DEPRECATED = "deprecated"  # kept for history and old annotations, no longer offered
        MERGED = "merged"  # its annotations moved to merged_into

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, related_name="children", on_delete=models.PROTECT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    merged_into = models.ForeignKey("self", null=True, blank=True, related_name="merged_from", on_delete=models.PROTECT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Two live labels may not share a name, whatever the case; merged ones are history.
            models.UniqueConstraint(
                Lower("name"), condition=~models.Q(status="merged"), name="label_unique_live_name"
            ),
        ]

    def __str__(self):
        return self.name


class TaxonomyEvent(models.Model):
    """One change to the label tree. Its id is the taxonomy version that the change produced."""

    class Kind(models.TextChoices):
        CREATE = "create"
        RENAME = "rename"
        MOVE = "move"
        MERGE = "merge"
        SPLIT = "split"
        DEPRECATE = "deprecate"
        RESTORE = "restore"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.ForeignKey(Label, related_name="events", on_delete=models.PROTECT)
    target = models.ForeignKey(Label, null=True, blank=True, related_name="+", on_delete=models.PROTECT)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    annotations_moved = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]


class Annotation(models.Model):
    """A person's (or a bulk action's) label for a video. One current annotation per video;
    relabelling keeps the old one as history. `label` follows merges and splits;
    `labelled_as` is what was chosen at the time and never changes."""

    class Source(models.TextChoices):
        MANUAL = "manual"
        CLUSTER = "cluster"  # bulk label of a mined cluster
        PROPOSAL = "proposal"  # accepting or merging a new-class proposal
        QUEUE = "queue"  # active-learning queue

    video = models.ForeignKey(Video, related_name="annotations", on_delete=models.CASCADE)
    label = models.ForeignKey(Label, related_name="annotations", on_delete=models.PROTECT)
    labelled_as = models.ForeignKey(Label, related_name="+", on_delete=models.PROTECT)
    source = models.CharField(max_length=16, choices=Source.choices)
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    cluster = models.ForeignKey("Cluster", null=True, blank=True, related_name="+", on_delete=models.SET_NULL)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)  # "labels since the last training"
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["video"], condition=models.Q(is_current=True), name="annotation_one_current"),
        ]
        indexes = [models.Index(fields=["label", "is_current"], name="annotation_label_current")]


class MiningRun(models.Model):
    """One pass of topic mining over the codes of a hash model. Pages show the newest complete
    run, so a run in progress never changes what people are looking at."""

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETE = "complete"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULE = "schedule"
        API = "api"
        COMMAND = "command"

    hash_model = models.ForeignKey(HashModel, related_name="mining_runs", on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    params = models.JSONField(default=dict)
    code_version = models.CharField(max_length=32)
    taxonomy_version = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict)
    stage = models.CharField(max_length=32, blank=True)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="running"), name="miningrun_one_running"),
        ]


class Cluster(models.Model):
    run = models.ForeignKey(MiningRun, related_name="clusters", on_delete=models.CASCADE)
    rank = models.PositiveIntegerField()  # 1 = largest
    size = models.PositiveIntegerField()
    cohesion = models.FloatField()
    medoid = models.ForeignKey(Video, related_name="+", on_delete=models.CASCADE)
    members = models.ManyToManyField(Video, through="ClusterMember", related_name="clusters")

    class Meta:
        ordering = ["run", "rank"]
        constraints = [models.UniqueConstraint(fields=["run", "rank"], name="cluster_unique_rank")]

    def __str__(self):
        return f"topic {self.rank} of run {self.run_id}"


class ClusterMember(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE)
    video = models.ForeignKey(Video, on_delete=models.CASCADE)
    distance = models.PositiveSmallIntegerField()  # Hamming distance to the medoid: members sort by it

    class Meta:
        ordering = ["distance", "video_id"]
        constraints = [models.UniqueConstraint(fields=["cluster", "video"], name="clustermember_unique")]


class Proposal(models.Model):
    """A mined cluster that no existing label explains, waiting for a taxonomy owner."""

    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"  # became a new label
        MERGED = "merged"  # its members were labelled with an existing label
        REJECTED = "rejected"  # remembered: an overlapping cluster is not proposed again
        SUPERSEDED = "superseded"  # a newer mining run replaced it before anyone decided

    cluster = models.OneToOneField(Cluster, related_name="proposal", on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    novelty = models.FloatField()  # higher: less explained by the taxonomy; the page sorts by it
    evidence = models.JSONField(default=dict)  # labelled fraction, distance to labelled videos, ...
    nearest_labels = models.JSONField(default=list)  # [{"id", "name", "similarity"}], best first
    label = models.ForeignKey(Label, null=True, blank=True, related_name="proposals", on_delete=models.PROTECT)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-novelty", "id"]


class ModelVersion(models.Model):
    """One training of the classifier. Published versions serve predictions; at most one at a time."""

    class Status(models.TextChoices):
        TRAINING = "training"
        CANDIDATE = "candidate"  # trained, not published (worse than the published one, or policy says manual)
        PUBLISHED = "published"
        RETIRED = "retired"  # was published, replaced or rolled back
        FAILED = "failed"

    class Trigger(models.TextChoices):
        LABELS = "labels"  # enough new labels arrived
        SCHEDULE = "schedule"
        MANUAL = "manual"
        API = "api"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                     on_delete=models.SET_NULL)
    taxonomy_version = models.PositiveIntegerField(default=0)
    labels_used = models.PositiveIntegerField(default=0)  # training rows (holdout excluded)
    classes = models.JSONField(default=list)  # label ids, in the artefact's column order
    metrics = models.JSONField(default=dict)  # holdout accuracy, macro_f1, per_class
    artefact = models.CharField(max_length=200, blank=True)
    checksum = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=32, blank=True)
    progress = models.FloatField(default=0.0)
    attempts = models.PositiveSmallIntegerField(default=0)  # >1: a worker died and the task was redelivered
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                     on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="published"),
                                    name="modelversion_one_published"),
            # Never two trainings at once: the second request finds this row and waits its turn.
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="training"),
                                    name="modelversion_one_training"),
        ]

    def __str__(self):
        return f"model v{self.pk}"


class DataSplit(models.Model):
    """Frozen train/holdout assignment of a labelled video, made the first time a training sees it:
    holdout videos are never trained on, so versions are compared on the same videos."""

    video = models.OneToOneField(Video, related_name="data_split", on_delete=models.CASCADE)
    holdout = models.BooleanField()
    assigned_at = models.DateTimeField(auto_now_add=True)


class QueueItem(models.Model):
    """A video worth a person's time, ranked by the published model and the queue strategy.
    Claimed by one annotator at a time until `claimed_until`."""

    video = models.OneToOneField(Video, related_name="queue_item", on_delete=models.CASCADE)
    score = models.FloatField(db_index=True)
    strategy = models.CharField(max_length=32)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, related_name="+", on_delete=models.SET_NULL)
    suggestions = models.JSONField(default=list)  # [{"label", "name", "confidence"}], best first
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, related_name="+",
                                   on_delete=models.SET_NULL)
    claimed_until = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-score", "id"]


class Prediction(models.Model):
    """The published model's top labels for a ready video, refreshed after each publish."""

    video = models.OneToOneField(Video, related_name="prediction", on_delete=models.CASCADE)
    model_version = models.ForeignKey(ModelVersion, related_name="predictions", on_delete=models.CASCADE)
    top = models.JSONField(default=list)  # [{"label", "name", "confidence"}], best first
    created_at = models.DateTimeField(auto_now=True)


class TaskDelivery(models.Model):
    """A task for one job that has started and not yet finished. A count that keeps growing means
    the task ends its worker every time (a poison file, a fit out of memory): after
    CLIPMINE_TASK_MAX_DELIVERIES starts it is given up (labeling.tasks.BoundedTask)."""

    key = models.CharField(max_length=255, unique=True)  # task name and arguments
    attempts = models.PositiveIntegerField(default=1)
    last_started_at = models.DateTimeField()
