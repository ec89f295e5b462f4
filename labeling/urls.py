from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from labeling.api import codes as codes_api
from labeling.api import models as models_api
from labeling.api import people as people_api
from labeling.api import taxonomy as taxonomy_api
from labeling.api import topics as topics_api
from labeling.api import videos as api
from labeling.views import annotate, media, people, proposals, taxonomy, topics, videos
from labeling.views import codes as code_views
from labeling.views import models as model_views

app_name = "labeling"

class Router(DefaultRouter):
    include_format_suffixes = False  # one URL per resource (JSON only); our actions take no `format`


router = Router()
router.register("videos", api.VideoViewSet, basename="video")
router.register("batches", api.IngestBatchViewSet, basename="batch")
router.register("labels", taxonomy_api.LabelViewSet, basename="label")
router.register("taxonomy-events", taxonomy_api.TaxonomyEventViewSet, basename="taxonomy-event")
router.register("annotations", taxonomy_api.AnnotationViewSet, basename="annotation")
router.register("mining-runs", topics_api.MiningRunViewSet, basename="mining-run")
router.register("clusters", topics_api.ClusterViewSet, basename="cluster")
router.register("proposals", topics_api.ProposalViewSet, basename="proposal")
router.register("people", people_api.PersonViewSet, basename="person")
router.register("models", models_api.ModelVersionViewSet, basename="model-version")
router.register("hash-models", codes_api.HashModelViewSet, basename="hash-model")

urlpatterns = [
    path("", videos.video_list, name="video_list"),
    path("videos/<int:pk>/", videos.video_detail, name="video_detail"),
    path("videos/<int:pk>/retry/", videos.video_retry_view, name="video_retry"),
    path("upload/", videos.upload, name="upload"),
    path("batches/<int:pk>/", videos.batch_progress_view, name="batch_progress"),
    path("videos/<int:pk>/label/", videos.video_label, name="video_label"),
    path("topics/", topics.topic_list, name="topics"),
    path("topics/progress/", topics.mining_progress, name="mining_progress"),
    path("topics/mine/", topics.mine_now, name="mine_now"),
    path("topics/<int:pk>/", topics.cluster_detail, name="cluster_detail"),
    path("topics/<int:pk>/label/", topics.cluster_label, name="cluster_label"),
    path("taxonomy/", taxonomy.taxonomy_page, name="taxonomy"),
    path("taxonomy/create/", taxonomy.label_create_view, name="label_create"),
    path("taxonomy/<int:pk>/rename/", taxonomy.label_rename_view, name="label_rename"),
    path("taxonomy/<int:pk>/move/", taxonomy.label_move_view, name="label_move"),
    path("taxonomy/<int:pk>/merge/", taxonomy.label_merge_view, name="label_merge"),
    path("taxonomy/<int:pk>/split/", taxonomy.label_split_view, name="label_split"),
    path("taxonomy/<int:pk>/deprecate/", taxonomy.label_deprecate_view, name="label_deprecate"),
    path("taxonomy/<int:pk>/restore/", taxonomy.label_restore_view, name="label_restore"),
    path("taxonomy/history/", taxonomy.taxonomy_history, name="taxonomy_history"),
    path("taxonomy/<int:pk>/history/", taxonomy.taxonomy_history, name="label_history"),
    path("proposals/", proposals.proposal_list, name="proposals"),
    path("proposals/<int:pk>/", proposals.proposal_detail, name="proposal_detail"),
    path("proposals/<int:pk>/accept/", proposals.proposal_accept_view, name="proposal_accept"),
    path("proposals/<int:pk>/merge/", proposals.proposal_merge_view, name="proposal_merge"),
    path("proposals/<int:pk>/reject/", proposals.proposal_reject_view, name="proposal_reject"),
    path("label/", annotate.annotate, name="annotate"),
    path("label/videos/<int:pk>/", annotate.annotate_label, name="annotate_label"),
    path("label/videos/<int:pk>/skip/", annotate.annotate_skip, name="annotate_skip"),
    path("label/undo/", annotate.annotate_undo, name="annotate_undo"),
    path("label/unskip/", annotate.annotate_unskip, name="annotate_unskip"),
    path("label/refresh/", annotate.annotate_refresh, name="annotate_refresh"),
    path("models/", model_views.models_page, name="models"),
    path("models/progress/", model_views.training_progress, name="training_progress"),
    path("models/retrain/", model_views.retrain_now, name="retrain_now"),
    path("models/<int:pk>/publish/", model_views.model_publish_view, name="model_publish"),
    path("codes/", code_views.codes_page, name="codes"),
    path("codes/progress/", code_views.fit_progress, name="fit_progress"),
    path("codes/fit/", code_views.fit_now, name="fit_now"),
    path("people/", people.people, name="people"),
    path("people/<int:pk>/role/", people.person_role, name="person_role"),
    path("media/keyframes/<int:pk>.jpg", media.keyframe_image, name="keyframe_image"),
    path("media/previews/<int:pk>.webm", media.video_preview, name="video_preview"),
    path("media/videos/<int:pk>/original", media.video_original, name="video_original"),
    re_path(r"^api/predict/?$", models_api.predict, name="predict"),  # integrators post to /api/predict
    path("api/", include(router.urls)),
]
