from django.contrib import admin

from labeling.models import HashModel, IndexSnapshot, IngestBatch, Video


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "status", "source", "duration_s", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["title", "original_name", "sha256"]
    readonly_fields = [f.name for f in Video._meta.fields]

    def has_add_permission(self, request):
        return False  # videos come in through ingest, which hashes, stores and processes them


@admin.register(HashModel)
class HashModelAdmin(admin.ModelAdmin):
    list_display = ["id", "method", "n_bits", "status", "fitted_on", "encoded", "activated_at"]


admin.site.register(IngestBatch)
admin.site.register(IndexSnapshot)
