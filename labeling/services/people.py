"""Granting roles. Only admins grant, and never to themselves: nobody raises their own role."""
from __future__ import annotations

from django.contrib.auth.models import Group
from django.db import transaction

from labeling.roles import Role, can_manage_people


class RoleError(PermissionError):
    """The grant is not allowed; the message says why."""


@transaction.atomic
def role_grant(*, user, role: Role, granted_by=None) -> None:
    """Give `user` exactly `role` (NONE removes every role). `granted_by=None` is the operator's
    command line, which is trusted; a person must be an admin other than `user`."""
    if granted_by is not None:
        if not can_manage_people(granted_by):
            raise RoleError("Only admins grant roles.")
        if granted_by.pk == user.pk:
            raise RoleError("Nobody can change their own role; ask another admin.")
    if user.is_superuser and role is not Role.ADMIN:
        raise RoleError(f"{user.username} is a superuser and stays an admin; change that in Django's admin.")
    groups = {r: Group.objects.get_or_create(name=r.group_name)[0] for r in Role.granted()}
    user.groups.remove(*groups.values())
    if role is not Role.NONE:
        user.groups.add(groups[role])
    user.__dict__.pop("_clipmine_role", None)
