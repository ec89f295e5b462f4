from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling.roles import Role
from labeling.services.people import RoleError, role_grant

CHOICES = {r.name.lower().replace("_", "-"): r for r in Role}


class Command(BaseCommand):
    help = "Give a user a role: annotator, taxonomy-owner, admin, or none."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=sorted(CHOICES))

    def handle(self, *args, username, role, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            role_grant(user=user, role=CHOICES[role])
        except RoleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{username} is now: {CHOICES[role].label}")
