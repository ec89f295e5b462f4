"""Topics in the browser: cluster cards of the newest complete mining run, live progress of a
running one, and a cluster's members with bulk labelling."""
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from labeling.models import Cluster, MiningRun
from labeling.roles import can_label, require
from labeling.selectors.taxonomy import offered_labels
from labeling.selectors.topics import cluster_cards, cluster_members, latest_complete_run, running_run
from labeling.services.annotations import cluster_bulk_label
from labeling.services.mining import MiningError, mining_run_enqueue
from labeling.services.taxonomy import TaxonomyError
from labeling.views.taxonomy import chosen_label, form_status

PAGE_SIZE = 24


@login_required
@require_safe
def topic_list(request):
    # `?run=` keeps paging through one run even if a newer one completes meanwhile.
    run_id = request.GET.get("run", "")
    if run_id.isdigit():
        run = get_object_or_404(MiningRun, pk=int(run_id), status=MiningRun.Status.COMPLETE)
    else:
        run = latest_complete_run()
    return _topics_page(request, run)


def _topics_page(request, run: MiningRun | None, **extra):
    page = Paginator(run.clusters.order_by("rank") if run else Cluster.objects.none(), PAGE_SIZE)
    page = page.get_page(request.GET.get("page"))
    context = {"run": run, "page": page, "pager_params": {"run": run.pk if run else None},
               "cards": cluster_cards(list(page)), **_progress(run, running_run()), **extra}
    return render(request, "labeling/topics.html", context, status=form_status(request, context))


@login_required
@require_safe
def mining_progress(request):
    """The polled partial: a running run's stage and progress, then an offer to show the new run."""
    shown = _run_or_none(request.GET.get("shown"))
    watching = _run_or_none(request.GET.get("watch")) or running_run()
    return render(request, "labeling/topics.html#mining", _progress(shown, watching))


@require(can_label)
@require_POST
def mine_now(request):
    shown = _run_or_none(request.POST.get("shown"))
    try:
        run = mining_run_enqueue(trigger=MiningRun.Trigger.MANUAL, user=request.user)
    except MiningError as exc:  # nothing to mine yet, or a run is already going
        if not request.htmx:
            return _topics_page(request, shown or latest_complete_run(), error=str(exc))
        return render(request, "labeling/topics.html#mining", {**_progress(shown, running_run()), "error": str(exc)})
    if not request.htmx:
        return redirect("labeling:topics")
    return render(request, "labeling/topics.html#mining", _progress(shown, run))


def _progress(shown: MiningRun | None, watching: MiningRun | None) -> dict:
    newest = latest_complete_run()
    return {"shown": shown, "watching": watching,
            "newer": newest if newest and (shown is None or newest.pk > shown.pk) else None}


def _run_or_none(value) -> MiningRun | None:
    return MiningRun.objects.filter(pk=int(value)).first() if value and str(value).isdigit() else None



@login_required
@require_safe
def cluster_detail(request, pk: int):
    cluster = get_object_or_404(Cluster.objects.select_related("run"), pk=pk)
    return render(request, "labeling/cluster_detail.html", _cluster_context(cluster))


@require(can_label)
@require_POST
def cluster_label(request, pk: int):
    cluster = get_object_or_404(Cluster.objects.select_related("run"), pk=pk)
    excluded = {int(v) for v in request.POST.getlist("exclude") if v.isdigit()}
    extra = {"excluded": excluded}
    try:
        label = chosen_label(request.POST.get("label"))
        changed = cluster_bulk_label(cluster=cluster, label=label, annotator=request.user, exclude=excluded)
    except TaxonomyError as exc:
        extra["error"] = str(exc)
    else:
        extra["result"] = {"label": label, "changed": len(changed),
                           "unchanged": max(0, cluster.size - len(excluded) - len(changed))}
        if not request.htmx:
            return redirect("labeling:cluster_detail", pk=cluster.pk)
    template = "labeling/cluster_detail.html#bulk" if request.htmx else "labeling/cluster_detail.html"
    return render(request, template, _cluster_context(cluster, **extra), status=form_status(request, extra))


def _cluster_context(cluster: Cluster, **extra) -> dict:
    return {"cluster": cluster, "card": cluster_cards([cluster])[0], "members": cluster_members(cluster),
            "labels": offered_labels(), "excluded": set(), **extra}
