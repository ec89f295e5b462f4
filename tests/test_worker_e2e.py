"""End to end through real processes: API upload -> broker -> Celery worker -> similar list."""
import pytest

from labeling.models import MiningRun, Video
from tests.videos import write_clip
from tests.worker import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _post(api, path):
    with open(path, "rb") as fh:
        response = api.post("/api/videos/", {"file": [fh]}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["items"][0]["video"]


def test_clip_posted_to_the_api_is_processed_by_a_worker_and_found_similar(api, worker, tmp_path):
    first = _post(api, write_clip(tmp_path / "first.mp4", seed=7, frames=30))
    second = _post(api, write_clip(tmp_path / "second.mp4", seed=8, frames=30))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 500)
    bad = _post(api, junk)

    def finished():
        statuses = dict(Video.objects.filter(pk__in=[first, second, bad]).values_list("pk", "status"))
        return all(s in ("ready", "rejected", "failed") for s in statuses.values()) and statuses

    statuses = wait_until(finished, timeout=180, message=f"the worker to process 3 videos\n{worker.output()[-3000:]}")
    assert statuses == {first: "ready", second: "ready", bad: "rejected"}, worker.output()[-3000:]
    neighbours = api.get(f"/api/videos/{second}/similar/?k=5").json()
    assert [n["video"]["id"] for n in neighbours] == [first]
    assert worker.process.poll() is None, "the worker must survive a rejected file"


def test_a_mining_run_requested_on_the_api_runs_on_a_worker(api, worker, tmp_path):
    clips = [_post(api, write_clip(tmp_path / f"{i}.mp4", seed=i, frames=24)) for i in range(2)]
    wait_until(lambda: Video.objects.filter(pk__in=clips, status="ready").count() == 2, timeout=180,
               message=f"the worker to process 2 videos\n{worker.output()[-3000:]}")
    response = api.post("/api/mining-runs/")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]

    run = wait_until(lambda: MiningRun.objects.exclude(status="running").filter(pk=run_id).first(), timeout=120,
                     message=f"the worker to finish mining run {run_id}\n{worker.output()[-3000:]}")
    assert run.status == "complete", run.error
    assert run.stats["n_codes"] == 2 and run.progress == 1.0
