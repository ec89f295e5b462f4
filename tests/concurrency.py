"""Running database work from several threads at the same moment (PostgreSQL's concurrency tests)."""
import threading


def run_together(work, items, *, timeout: float = 60) -> None:
    """Call `work(item)` for every item, each in its own thread and connection, all released at
    once; re-raises the first error (an assertion in a thread would otherwise be lost)."""
    from django.db import connections

    start, errors = threading.Barrier(len(items)), []

    def run(item):
        try:
            start.wait()
            work(item)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
