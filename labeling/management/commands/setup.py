"""Prepare a release: what every start needs once, before any web or worker process runs."""
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Migrate, collect static files and, with DEBUG off, run the deploy checks (errors stop it)."

    def handle(self, *args, verbosity, **options):
        call_command("migrate", interactive=False, verbosity=max(0, verbosity - 1))
        # With DEBUG off pages name hashed static files from the manifest this writes: without it,
        # every page is a 500. With DEBUG on whitenoise serves the sources; this copies only changes.
        call_command("collectstatic", interactive=False, verbosity=max(0, verbosity - 1))
        if not settings.DEBUG:
            # Raises SystemCheckError (the command fails) on errors; warnings are printed.
            call_command("check", deploy=True, fail_level="ERROR")
        if verbosity:
            self.stdout.write("setup: database migrated, static files collected"
                              + ("" if settings.DEBUG else ", deploy checks passed"))
