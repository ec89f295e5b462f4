from django.core.management.base import BaseCommand

from labeling.models import HashModel
from labeling.services.index import index_snapshot_build


class Command(BaseCommand):
    help = "Rebuild the faiss index of the active hash model from the codes in the database."

    def handle(self, *args, **options):
        model = HashModel.objects.filter(status=HashModel.Status.ACTIVE).first()
        if model is None:
            self.stdout.write("No hash model yet: ingest some videos first.")
            return
        snapshot = index_snapshot_build(hash_model=model)
        self.stdout.write(f"index of {model}: {snapshot.size} codes, {snapshot.kind} search, {snapshot.path}")
