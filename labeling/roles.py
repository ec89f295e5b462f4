"""Who may do what. Roles are Django groups, granted by admins (`manage.py grant_role`, the
people page or Django's admin); nobody can change their own role.

- annotator: labels videos (one by one, in bulk from a cluster, from the queue)
- taxonomy owner: also edits the label tree and decides new-class proposals
- admin: also grants roles and runs maintenance (superusers are admins)

An account with no role can look but not change anything.
"""
from __future__ import annotations

import enum
import functools

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission


class Role(enum.IntEnum):
    NONE = 0
    ANNOTATOR = 1
    TAXONOMY_OWNER = 2
    ADMIN = 3

    @property
    def group_name(self) -> str:
        return self.name.lower().replace("_", " ")

    @property
    def label(self) -> str:
        return "no role" if self is Role.NONE else self.group_name

    @classmethod
    def granted(cls) -> list[Role]:
        return [cls.ANNOTATOR, cls.TAXONOMY_OWNER, cls.ADMIN]


def role_of(user) -> Role:
    if not (user and user.is_authenticated and user.is_active):
        return Role.NONE
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_clipmine_role", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = max((r for r in Role.granted() if r.group_name in names), default=Role.NONE)
        user._clipmine_role = cached
    return cached


def can_label(user) -> bool:
    return role_of(user) >= Role.ANNOTATOR


def can_edit_taxonomy(user) -> bool:
    return role_of(user) >= Role.TAXONOMY_OWNER


def can_manage_people(user) -> bool:
    return role_of(user) >= Role.ADMIN


def require(check):
    """View decorator: sign in first, then 403 unless `check(request.user)`."""

    def decorator(view):
        @login_required
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class _RolePermission(BasePermission):
    """Anyone signed in may read; writing needs `check`."""

    check = staticmethod(can_label)

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or self.check(request.user)


class LabelsVideos(_RolePermission):
    check = staticmethod(can_label)


class EditsTaxonomy(_RolePermission):
    check = staticmethod(can_edit_taxonomy)


class ManagesPeople(BasePermission):
    """The people list and role grants are for admins only, reading included."""

    def has_permission(self, request, view):
        return can_manage_people(request.user)


class DecidesProposals(BasePermission):
    """Proposals are the taxonomy owners' queue: reading them too."""

    def has_permission(self, request, view):
        return can_edit_taxonomy(request.user)
