"""Role checks for templates, so pages hide the controls a person cannot use (views still enforce)."""
from django import template

from labeling import roles

register = template.Library()


@register.filter
def role_label(user) -> str:
    return roles.role_of(user).label


@register.filter
def can_label(user) -> bool:
    return roles.can_label(user)


@register.filter
def can_edit_taxonomy(user) -> bool:
    return roles.can_edit_taxonomy(user)


@register.filter
def can_manage_people(user) -> bool:
    return roles.can_manage_people(user)
