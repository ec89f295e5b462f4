from urllib.parse import urlencode

from django import template

register = template.Library()


@register.filter
def get_item(mapping, key):
    return mapping.get(key)


@register.filter
def urlencode_dict(mapping):
    """Query string of the non-empty filters, for pager links ("" for none)."""
    return urlencode({k: v for k, v in (mapping or {}).items() if v})
