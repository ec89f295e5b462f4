"""The codes page: the active hash model and what its codes cost beside float features, every hash
model fitted so far, live progress of a fit, and for taxonomy owners and admins: fit new codes now.

Like the models page: while a model fits, the `fitting` partial polls itself; when the model it
watches is done it tells the page (`codes-changed`), and the `hash-models` partial (summary and list)
fetches itself again."""
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import trigger_client_event

from labeling.models import HashModel
from labeling.roles import can_edit_taxonomy, require
from labeling.selectors.codes import FIT_METHODS, code_summary, fit_bits, fitting_hash_model, hash_models
from labeling.services.hash_training import configured_method, hash_model_enqueue
from labeling.views.taxonomy import partial_wanted

PAGE_SIZE = 25
CHANGED = "codes-changed"  # the client event that makes the summary and list fetch themselves again


class FitForm(forms.Form):
    method = forms.ChoiceField()
    n_bits = forms.TypedChoiceField(label="Bits", coerce=int)

    def __init__(self, *args, **kwargs):
        # Choices and defaults follow the settings at request time.
        super().__init__(*args, initial={"method": configured_method(),
                                         "n_bits": settings.CLIPMINE_HASH_BITS}, **kwargs)
        method, bits = self.fields["method"], self.fields["n_bits"]
        method.choices = [(m.value, m.label) for m in FIT_METHODS]
        bits.choices = [(b, f"{b} bits") for b in fit_bits()]
        method.error_messages = {"required": "Choose a method.", "invalid_choice": (
            f"Unknown method “%(value)s”: choose {_or([m.label for m in FIT_METHODS])}.")}
        bits.error_messages = {"required": "Choose a code length.", "invalid_choice": (
            f"Codes can have {_or([str(b) for b in fit_bits()])} bits, not “%(value)s”.")}

    def error_text(self) -> str:
        return " ".join(message for messages in self.errors.values() for message in messages)


@login_required
@require_safe
def codes_page(request):
    if partial_wanted(request):
        return render(request, "labeling/codes.html#hash-models", _models(request))
    return render(request, "labeling/codes.html", {**_models(request), **_fitting(fitting_hash_model())})


@login_required
@require_safe
def fit_progress(request):
    """The polled partial. Once the watched model is done it shows the outcome and stops polling."""
    watched = _model_or_none(request.GET.get("watch"))
    response = render(request, "labeling/codes.html#fitting",
                      _fitting(watched or fitting_hash_model(), already=request.GET.get("already") == "1"))
    if watched is not None and watched.status != HashModel.Status.FITTING:
        trigger_client_event(response, CHANGED)
    return response


@require(can_edit_taxonomy)
@require_POST
def fit_now(request):
    form = FitForm(request.POST)
    if not form.is_valid():
        # htmx swaps only 2xx responses: the fragment says why; a plain form post gets a 400.
        context = _fitting(fitting_hash_model(), form=form, error=form.error_text())
        if request.htmx:
            return render(request, "labeling/codes.html#fitting", context)
        return render(request, "labeling/codes.html", {**_models(request), **context}, status=400)
    model = hash_model_enqueue(trigger=HashModel.Trigger.MANUAL, user=request.user,
                               method=form.cleaned_data["method"], n_bits=form.cleaned_data["n_bits"])
    if not request.htmx:
        if model is None:
            context = {**_models(request), **_fitting(fitting_hash_model(), already=True)}
            return render(request, "labeling/codes.html", context, status=400)
        return redirect("labeling:codes")
    response = render(request, "labeling/codes.html#fitting",
                      _fitting(model or fitting_hash_model(), already=model is None))
    if model is not None:
        trigger_client_event(response, CHANGED)  # the new model shows in the list as fitting
    return response


def _or(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1]


def _fitting(watching: HashModel | None, *, form: FitForm | None = None, **extra) -> dict:
    return {"watching": watching, "form": form or FitForm(), **extra}


def _models(request) -> dict:
    page = Paginator(hash_models(), PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "models": list(page), "summary": code_summary()}


def _model_or_none(value) -> HashModel | None:
    return HashModel.objects.filter(pk=int(value)).first() if value and str(value).isdigit() else None
