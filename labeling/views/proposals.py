"""New-class proposals: the taxonomy owners' review queue. Each open proposal shows its exemplars and
evidence; its decision panel (all members, click to exclude) is loaded when opened."""
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from labeling.models import Label, Proposal
from labeling.roles import can_edit_taxonomy, require
from labeling.selectors.taxonomy import offered_labels
from labeling.selectors.topics import cluster_cards, cluster_members, decided_proposals, label_counts, open_proposals
from labeling.services.proposals import proposal_accept, proposal_merge, proposal_reject
from labeling.services.taxonomy import TaxonomyError
from labeling.views.taxonomy import chosen_label, form_status, partial_wanted

PAGE_SIZE = 10


@require(can_edit_taxonomy)
@require_safe
def proposal_list(request):
    page = Paginator(open_proposals(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "cards": _cards(list(page)), "decided": decided_proposals(), "labels": offered_labels()}
    return render(request, "labeling/proposals.html", context)


@require(can_edit_taxonomy)
@require_safe
def proposal_detail(request, pk: int):
    """The decision panel: a fragment for the list page, or a page of its own without JavaScript."""
    proposal = get_object_or_404(Proposal.objects.select_related("cluster"), pk=pk)
    context = {"c": _cards([proposal])[0], "panel": _panel(proposal), "labels": offered_labels()}
    if partial_wanted(request):
        return render(request, "labeling/proposals.html#decide", context)
    return render(request, "labeling/proposals.html", {**context, "cards": [context["c"]], "single": True})


@require(can_edit_taxonomy)
@require_POST
def proposal_accept_view(request, pk: int):
    def decide(proposal, excluded):
        parent = chosen_label(request.POST.get("parent"), optional=True)
        label = proposal_accept(proposal=proposal, name=request.POST.get("name", ""), parent=parent,
                                exclude=excluded, actor=request.user)
        return f"Accepted as the new label “{label.name}”: {_carrying(proposal, label)}, {len(excluded)} left out."

    return _decide(request, pk, decide, "accept")


@require(can_edit_taxonomy)
@require_POST
def proposal_merge_view(request, pk: int):
    def decide(proposal, excluded):
        label = chosen_label(request.POST.get("label"))
        proposal_merge(proposal=proposal, label=label, exclude=excluded, actor=request.user)
        return f"Merged into “{label.name}”: {_carrying(proposal, label)}, {len(excluded)} left out."

    return _decide(request, pk, decide, "merge")


@require(can_edit_taxonomy)
@require_POST
def proposal_reject_view(request, pk: int):
    def decide(proposal, excluded):
        proposal_reject(proposal=proposal, note=request.POST.get("note", ""), actor=request.user)
        return "Rejected: clusters overlapping this one will not be proposed again."

    return _decide(request, pk, decide, "reject")


def _decide(request, pk: int, decide, action: str):
    """Run `decide(proposal, excluded) -> message`; show the decided card, or the refusal in the panel."""
    proposal = get_object_or_404(Proposal.objects.select_related("cluster"), pk=pk)
    excluded = {int(v) for v in request.POST.getlist("exclude") if v.isdigit()}
    context = {"labels": offered_labels()}
    try:
        context["outcome"] = decide(proposal, excluded)
    except TaxonomyError as exc:
        context["panel"] = _panel(proposal, error=str(exc), error_at=action, excluded=excluded, posted=request.POST)
    else:
        if not request.htmx:
            return redirect("labeling:proposals")
    proposal.refresh_from_db()
    context["c"] = _cards([proposal])[0]
    if request.htmx:
        return render(request, "labeling/proposals.html#card", context)
    return render(request, "labeling/proposals.html", {**context, "cards": [context["c"]], "single": True},
                  status=form_status(request, context["panel"]))


def _cards(proposals: list[Proposal]):
    """Cluster cards for the proposals, with their nearest labels as they are now (renamed, merged)."""
    cards = cluster_cards([p.cluster for p in proposals])
    current = Label.objects.in_bulk({n["id"] for p in proposals for n in p.nearest_labels})
    for card, proposal in zip(cards, proposals):
        card.proposal = proposal
        card.nearest = [{**n, "label": current.get(n["id"])} for n in proposal.nearest_labels]
    return cards


def _panel(proposal: Proposal, **extra) -> dict:
    ids = [n["id"] for n in proposal.nearest_labels]
    active = set(offered_labels().filter(pk__in=ids).values_list("pk", flat=True))
    return {"members": cluster_members(proposal.cluster), "excluded": set(), "posted": {},
            "suggested": next((pk for pk in ids if pk in active), None), **extra}


def _carrying(proposal: Proposal, label: Label) -> str:
    count = label_counts([proposal.cluster])[proposal.cluster_id][(label.pk, label.name)]
    return f"{count} of {proposal.cluster.size} members carry it"
