from django.urls import include, path
from rest_framework.routers import DefaultRouter

from labeling import api
from labeling.views import media, videos

app_name = "labeling"

router = DefaultRouter()
router.register("videos", api.VideoViewSet, basename="video")
router.register("batches", api.IngestBatchViewSet, basename="batch")

urlpatterns = [
    path("", videos.video_list, name="video_list"),
    path("videos/<int:pk>/", videos.video_detail, name="video_detail"),
    path("videos/<int:pk>/retry/", videos.video_retry_view, name="video_retry"),
    path("upload/", videos.upload, name="upload"),
    path("batches/<int:pk>/", videos.batch_progress_view, name="batch_progress"),
    path("media/keyframes/<int:pk>.jpg", media.keyframe_image, name="keyframe_image"),
    path("media/previews/<int:pk>.webm", media.video_preview, name="video_preview"),
    path("media/videos/<int:pk>/original", media.video_original, name="video_original"),
    path("api/", include(router.urls)),
]
