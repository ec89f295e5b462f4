"""clipmine's data. Writes go through labeling.services; reads through labeling.selectors."""
from django.conf import settings
from django.db import models


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
        ITQ = "itq", "PCA + ITQ"
        LSH = "lsh", "random-projection LSH"

    class Status(models.TextChoices):
        FITTING = "fitting"
        ACTIVE = "active"
        RETIRED = "retired"
        FAILED = "failed"

    method = models.CharField(max_length=8, choices=Method.choices)
    n_bits = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FITTING)
    artefact = models.CharField(max_length=200, blank=True)
    checksum = models.CharField(max_length=64, blank=True)
    fitted_on = models.PositiveIntegerField(default=0)
    encoded = models.PositiveIntegerField(default=0)
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
