"""Progress bars for commands that wait on workers."""
import time

from tqdm import tqdm

from labeling.models import IngestBatch
from labeling.selectors.videos import batch_progress


def wait_for_batch(batch: IngestBatch, *, timeout_s: float | None = None, poll_s: float = 1.0) -> dict:
    """Block until every accepted video of the batch is processed; a bar shows how far."""
    progress = batch_progress(batch)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with tqdm(total=progress["accepted"], desc="processing", unit="video") as bar:
        while True:
            progress = batch_progress(batch)
            bar.n = progress["accepted"] - progress["waiting"]
            bar.set_postfix(ready=progress["ready"], rejected=progress["rejected"], failed=progress["failed"])
            bar.refresh()
            if progress["done"]:
                return progress
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{progress['waiting']} videos still waiting; is a worker running?")
            time.sleep(poll_s)
