"""People and their roles, for admins. The service refuses what is not allowed (your own role, a
superuser's); the refusal shows on that person's row."""
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from labeling.roles import Role, can_manage_people, require, role_of
from labeling.services.people import RoleError, role_grant

PAGE_SIZE = 100
ROLES = {r.name.lower(): r for r in Role}


def _people():
    return get_user_model().objects.filter(is_active=True).order_by("username")


def _row(person, **extra) -> dict:
    return {"person": person, "role": role_of(person).name.lower(), **extra}


def _context(page, rows) -> dict:
    return {"page": page, "rows": rows, "roles": [(key, role.label) for key, role in ROLES.items()]}


@require(can_manage_people)
@require_safe
def people(request):
    page = Paginator(_people(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "labeling/people.html", _context(page, [_row(p) for p in page]))


@require(can_manage_people)
@require_POST
def person_role(request, pk: int):
    person = get_object_or_404(_people(), pk=pk)
    role = ROLES.get(request.POST.get("role", ""))
    try:
        if role is None:
            raise RoleError("Choose a role from the list.")
        role_grant(user=person, role=role, granted_by=request.user)
    except RoleError as exc:
        row = _row(person, error=str(exc))
    else:
        if not request.htmx:
            return redirect("labeling:people")
        row = _row(person, message=f"{person.username} is now {role.label}.")
    if request.htmx:
        return render(request, "labeling/people.html#row", {**_context(None, [row]), "r": row})
    # Without JavaScript: the whole list, with the refusal on this person's row.
    page = Paginator(_people(), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [row if p.pk == person.pk else _row(p) for p in page]
    return render(request, "labeling/people.html", _context(page, rows), status=400)
