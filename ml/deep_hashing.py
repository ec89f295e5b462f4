"""Semi-supervised deep hashing (torch, CPU): float video features -> packed binary codes.

The network sits on top of the CNN features: PCA (with `whiten=True` scaled to equal variance,
and feature-space neighbours measured in that whitened space: on the hard corpus's 684 clips it
found 0.97 of the reposts first against 0.91 at 64 bits, but fitted on fewer videos than bits,
as on the 48-clip demo, noise directions take over and topic mAP@10 fell from 0.88 to 0.10; so
it is off by default) then a trainable rotation initialised from ITQ's,
plus a residual MLP branch (features -> hidden -> bits) whose last layer starts at zero, so
training starts exactly at the PCA+ITQ codes. Its tanh outputs are the relaxed codes.

Codes serve two searches at once: topic retrieval (videos of a topic near each other) and repost
detection (an edited copy of a video must find that video strictly first, even among many videos
of its topic). So a topic must not collapse onto one code: neighbours are pulled near, but not
onto each other, and a ranking term keeps every video nearest to its own copies. Trained on:

- every video (unsupervised): code inner products follow the feature-space neighbourhoods of the
  batch (k nearest neighbours -> similarity `neighbour_target` < 1, i.e. near but distinct codes;
  dissimilar pairs -> orthogonal codes), quantisation (outputs near +-1), balanced bits (batch
  mean near 0), decorrelated bits, and two terms on augmented views (pools of random subsets of a
  video's keyframes, with feature dropout and noise), which stand in for edited copies:
  consistency (a view gets its video's code) and instance ranking (a view's code is nearer its
  own video's code than any other video's of the batch, by `margin`; a video that is as near in
  feature space as the view itself is left alone, since it may be a copy);
- labelled videos (supervised): same label -> similarity `label_target` (< 1, so a label does
  not become one code either), different labels -> orthogonal codes, label ranking (a video's
  least similar same-label video nearer than any different-label one, by `label_margin`), and a
  linear classifier on the relaxed codes. Labelled videos are oversampled into batches when few,
  and these terms are weighted by the batch's labelled share, so zero labels is simply the
  unsupervised model and many labels lean on them more;
- with labels of two or more classes, the last quarter of the code (at most `discriminant_bits`,
  whole bytes) is not trained but given to label-discriminant bits (ml.label_discriminant):
  on the hard corpus they kept the never-labelled classes' clips above the float features,
  where the supervised terms alone pulled them into known codes.

The old objective (neighbours and same-label pairs -> identical codes) retrieved topics a little
better but collapsed each topic onto a few codes, so an edited copy tied with dozens of videos;
bench/README.md has the figures for both searches.

Codes are `np.packbits` rows like the other hashers'. Encoding is numpy only; saving and loading
go through `ml.hashing.save` / `load_hasher` (plain arrays, never unpickled).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch
from threadpoolctl import ThreadpoolController, threadpool_limits
from torch import nn

from ml import label_discriminant
from ml.hashing import ITQHasher, _check_features, _Hasher, check_n_bits


class DeepHasher(_Hasher):
    """Semi-supervised deep hashing; `fit(X, views=..., labels=...)`, then `encode(X)`.

    epochs are passes over the videos, but training takes at least `min_steps` batches in all:
    a corpus of a few dozen videos needs more steps than passes.
    """

    kind = "deep"

    def __init__(self, n_bits: int = 64, epochs: int = 30, random_state: int | None = 0, *,
                 hidden: int = 512, batch_size: int = 256, min_steps: int = 200, lr: float = 1e-3,
                 weight_decay: float = 1e-4, n_neighbours: int = 5, neighbour_target: float = 0.7,
                 quantisation: float = 0.1, balance: float = 0.1, decorrelation: float = 0.1,
                 consistency: float = 1.0, instance: float = 0.3, margin: float = 0.05,
                 supervised: float = 1.0, label_target: float = 0.7, label_margin: float = 0.1,
                 min_labelled_share: float = 0.25, view_dropout: float = 0.1, view_noise: float = 0.3,
                 whiten: bool = False, discriminant_bits: int = 16):
        self.n_bits = n_bits
        self.epochs = epochs
        self.random_state = random_state
        self.hidden = hidden
        self.batch_size = batch_size
        self.min_steps = min_steps
        self.lr = lr
        self.weight_decay = weight_decay
        self.n_neighbours = n_neighbours
        self.neighbour_target = neighbour_target
        self.quantisation = quantisation
        self.balance = balance
        self.decorrelation = decorrelation
        self.consistency = consistency
        self.instance = instance
        self.margin = margin
        self.supervised = supervised
        self.label_target = label_target
        self.label_margin = label_margin
        self.min_labelled_share = min_labelled_share
        self.view_dropout = view_dropout
        self.view_noise = view_noise
        self.whiten = whiten
        self.discriminant_bits = discriminant_bits

    def fit(self, X: np.ndarray, *, views: np.ndarray | None = None, labels: np.ndarray | None = None,
            progress: Callable[[float], None] | None = None) -> DeepHasher:
        """X (n, d) video features; views (n, k, d) keyframe features, all-zero slot = none;
        labels (n,) int, -1 = unlabelled; progress(fraction) after every epoch.
        ValueError on NaN, empty or mismatched inputs."""
        n_bits = check_n_bits(self.n_bits)
        X = _check_features(X)
        views = _check_views(views, X.shape)
        labels = _check_labels(labels, len(X))
        if not (self.epochs >= 1 and self.hidden >= 1 and self.batch_size >= 1):
            raise ValueError("epochs, hidden and batch_size must be at least 1")
        # One thread each for torch and BLAS: on 2 busy cores more threads run 20-50x slower.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                self._fit(X, views, labels, n_bits, progress)
        finally:
            torch.set_num_threads(threads)
        return self

    def _discriminant_bits(self, n_bits: int, labels: np.ndarray, n_features: int) -> int:
        """Bits given to label_discriminant: at most a quarter of the code, whole bytes, and
        none without labels of two classes or with too few videos to estimate directions."""
        k = min(self.discriminant_bits, n_bits // 4) // 8 * 8
        return k if k and label_discriminant.usable(labels, k, n_features) else 0

    def _fit(self, X: np.ndarray, views: np.ndarray | None, labels: np.ndarray, n_bits: int,
             progress: Callable[[float], None] | None) -> None:
        seed = int(np.random.default_rng(self.random_state).integers(2**31))
        rng = np.random.default_rng(seed)
        n_discriminant = self._discriminant_bits(n_bits, labels, X.shape[1])
        n_bits -= n_discriminant
        # Starts at PCA+ITQ (whitened or not), and measures neighbours in the same space.
        itq = ITQHasher(n_bits=n_bits, random_state=self.random_state, whiten=self.whiten).fit(X)
        mean = itq.mean_
        # Inputs standardised by one scalar (per-feature scaling would blow up near-constant
        # features); the PCA projection rescaled so its outputs start in tanh's useful range.
        # Neither changes a sign, so the first codes are ITQ's.
        scale = float(np.sqrt(((X - mean) ** 2).mean())) or 1.0
        pca = itq.components_.T
        spread = float(np.sqrt(((((X - mean) / scale) @ pca) ** 2).mean())) or 1.0
        net = _Net(pca / spread, itq.rotation_, self.hidden, rng)
        projection = torch.from_numpy((pca / spread).astype(np.float32)) if self.whiten else None
        data = _Data(X, views, labels, mean, scale, projection)
        self._train(net, data, rng, torch.Generator().manual_seed(seed), progress)

        self.mean_, self.n_features_in_ = mean, X.shape[1]
        # Fold the input scale into the first layers: encode needs only (X - mean_).
        weights = {name: p.detach().double().numpy() for name, p in net.named_parameters()}
        self.linear_weight_ = net.linear_map() / scale
        self.linear_bias_ = weights["rotation.bias"]
        self.hidden_weight_ = weights["hidden.weight"] / scale
        self.hidden_bias_ = weights["hidden.bias"]
        self.out_weight_ = weights["out.weight"]
        self.out_bias_ = weights["out.bias"]
        if n_discriminant:  # linear rows with no hidden part: the saved format stays the same
            rows = label_discriminant.discriminant_rows(X - mean, labels, n_discriminant, rng)
            self.linear_weight_ = np.vstack([self.linear_weight_, rows])
            self.linear_bias_ = np.concatenate([self.linear_bias_, np.zeros(n_discriminant)])
            self.out_weight_ = np.vstack([self.out_weight_, np.zeros((n_discriminant, self.hidden))])
            self.out_bias_ = np.concatenate([self.out_bias_, np.zeros(n_discriminant)])

    def _train(self, net: _Net, data: _Data, rng: np.random.Generator, gen: torch.Generator,
               progress: Callable[[float], None] | None) -> None:
        batch = min(self.batch_size, data.n)
        head = nn.Linear(net.n_bits, max(data.n_classes, 1))
        nn.init.zeros_(head.weight)  # zeros, not torch's global RNG: fits stay deterministic
        nn.init.zeros_(head.bias)
        optimiser = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=self.lr,
                                      weight_decay=self.weight_decay)
        steps = max(math.ceil(data.n / batch), math.ceil(self.min_steps / self.epochs))
        batches = _Batches(data, batch, self.min_labelled_share, rng)
        for epoch in range(self.epochs):
            for _ in range(steps):
                loss = self._loss(net, head, data, batches.next(), gen)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if progress is not None:
                progress((epoch + 1) / self.epochs)

    def _loss(self, net: _Net, head: nn.Linear, data: _Data, idx: torch.Tensor,
              gen: torch.Generator) -> torch.Tensor:
        x = data.x[idx]
        u = torch.tanh(net(x))
        n_bits = u.shape[1]
        unit = nn.functional.normalize(data.metric(x), dim=1)
        cosine = unit @ unit.T  # of the (centred) inputs, no gradient
        loss = _neighbour_loss(u, cosine, self.n_neighbours, self.neighbour_target)
        loss = loss + self.quantisation * ((u.abs() - 1) ** 2).mean()
        loss = loss + self.balance * (u.mean(dim=0) ** 2).mean()
        cov = u.T @ u / len(u)
        loss = loss + self.decorrelation * (cov - torch.diag(torch.diagonal(cov))).pow(2).sum() / n_bits**2
        if self.consistency or self.instance:
            for _ in range(2):
                x_view = data.view(idx, gen, self.view_dropout, self.view_noise)
                view = torch.tanh(net(x_view))
                loss = loss + self.consistency / 2 * ((view - u) ** 2).mean()
                if self.instance:
                    # The view's own video in feature space: as near as this, another video counts
                    # as a copy (a repost already in the database), not as one to push away.
                    own = (nn.functional.normalize(data.metric(x_view), dim=1) * unit).sum(dim=1)
                    copies = (cosine >= own[:, None]) | (idx[:, None] == idx[None, :])
                    loss = loss + self.instance / 2 * _ranking_loss(view, u, copies, self.margin)
        y = data.y[idx]
        known = y >= 0
        if self.supervised and int(known.sum()) > 1:
            uk, yk = u[known], y[known]
            same = (yk[:, None] == yk[None, :]).float()
            target = torch.maximum(self.label_target * same, torch.eye(len(uk)))
            supervised = ((uk @ uk.T / n_bits - target) ** 2).mean()
            if data.n_classes > 1:
                supervised = supervised + nn.functional.cross_entropy(head(uk), yk)
                supervised = supervised + _label_ranking_loss(uk, same > 0, self.label_margin)
            loss = loss + self.supervised * float(known.float().mean()) * supervised
        return loss

    def _project(self, Xc: np.ndarray) -> np.ndarray:
        with _blas().limit(limits=1, user_api="blas"):
            hidden = np.maximum(Xc @ self.hidden_weight_.T + self.hidden_bias_, 0)
            return Xc @ self.linear_weight_.T + self.linear_bias_ + hidden @ self.out_weight_.T + self.out_bias_


@functools.cache
def _blas() -> ThreadpoolController:
    """One controller, made once: it scans the loaded libraries, which would cost more than
    encoding a single video on every call."""
    return ThreadpoolController()


def _neighbour_loss(u: torch.Tensor, cosine: torch.Tensor, k: int, target: float) -> torch.Tensor:
    """Squared error between code inner products (in [-1, 1]) and a target from the batch's
    feature cosines: `target` for each item's k nearest neighbours (either direction), 1 for an
    item with itself, 0 (orthogonal codes) for pairs of negative cosine. Other pairs are left
    free: they may be the same topic beyond the k nearest, and chaining neighbours pulls a topic
    together without guessing its size. A target below 1 keeps neighbours near but distinct, so
    a topic's videos keep codes of their own.
    """
    with torch.no_grad():
        n = len(cosine)
        eye = torch.eye(n)
        near = torch.zeros(n, n)
        k = min(k, n - 1)
        if k > 0:
            near.scatter_(1, (cosine - 3 * eye).topk(k, dim=1).indices, 1.0)  # never one's own neighbour
        near = torch.maximum(near, near.T) * (1 - eye)
        goal = torch.maximum(target * near, eye)
        weight = ((near > 0) | (eye > 0) | (cosine <= 0)).float()
    similarity = u @ u.T / u.shape[1]
    return (weight * (similarity - goal) ** 2).sum() / weight.sum()


def _ranking_loss(queries: torch.Tensor, codes: torch.Tensor, copies: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge on instance ranking: query i (a view of video i) must be nearer (cosine of relaxed
    codes) to codes[i] than to every other codes[j] by `margin`, except where copies[i, j].
    Summed over j, so it bounds how many videos would tie with or beat i's own; zero once every
    video is ranked first by the margin, so same-topic videos are pushed apart no further."""
    sim = nn.functional.normalize(queries, dim=1) @ nn.functional.normalize(codes, dim=1).T
    violation = torch.relu(sim - torch.diagonal(sim)[:, None] + margin).masked_fill(copies, 0.0)
    return violation.sum(dim=1).mean()


def _label_ranking_loss(codes: torch.Tensor, same: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge on label ranking among labelled videos: each one's least similar same-label video
    must be nearer (cosine of relaxed codes) than every different-label one, by `margin`. It
    orders labels without making a label's videos one code. Summed over the different-label
    videos and over the videos that have a same-label video in the batch, divided by all of them,
    so a batch with few same-label pairs weighs less."""
    unit = nn.functional.normalize(codes, dim=1)
    sim = unit @ unit.T
    positive = same & ~torch.eye(len(codes), dtype=torch.bool)
    weakest = sim.masked_fill(~positive, 2.0).min(dim=1, keepdim=True).values
    violation = torch.relu(sim - weakest + margin).masked_fill(same, 0.0)
    has_positive = positive.any(dim=1)
    return violation[has_positive].sum(dim=1).sum() / len(codes)


class _Net(nn.Module):
    """Fixed PCA projection -> trainable rotation (initialised from ITQ's), plus the residual MLP.

    The rotation acts on the PCA outputs, which are of order one, so Adam's steps are small
    relative to them; a trainable (features x bits) matrix would move every one of its tiny
    weights by the learning rate at once, and the codes would jump away from ITQ's first step.
    """

    def __init__(self, pca: np.ndarray, rotation: np.ndarray, hidden: int, rng: np.random.Generator):
        super().__init__()
        dim, self.n_bits = pca.shape
        self.register_buffer("pca", torch.from_numpy(pca.astype(np.float32)))
        self.rotation = nn.Linear(self.n_bits, self.n_bits)
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, self.n_bits)
        with torch.no_grad():  # numpy's seeded generator, not torch's global one
            self.rotation.weight.copy_(torch.from_numpy(rotation.T.copy()))
            self.hidden.weight.copy_(torch.from_numpy(rng.standard_normal((hidden, dim)) * math.sqrt(2 / dim)))
            for tensor in (self.rotation.bias, self.hidden.bias, self.out.weight, self.out.bias):
                tensor.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rotation(x @ self.pca) + self.out(torch.relu(self.hidden(x)))

    def linear_map(self) -> np.ndarray:
        """The linear branch as one (bits, features) matrix."""
        return (self.pca.double() @ self.rotation.weight.detach().double().T).T.numpy()


class _Data:
    """Standardised features, keyframe views and class ids (-1 = none).

    Views are kept unit-length (as ingest stores them) in float16, which halves their memory.
    """

    def __init__(self, X: np.ndarray, views: np.ndarray | None, labels: np.ndarray, mean: np.ndarray,
                 scale: float, projection: torch.Tensor | None = None):
        self.projection = projection
        self.mean, self.scale = torch.from_numpy(mean.astype(np.float32)), scale
        self.x = torch.from_numpy(((X - mean) / scale).astype(np.float32))
        self.n = len(X)
        if views is not None:
            norms = np.linalg.norm(views, axis=2, keepdims=True)
            views = (views / np.where(norms > 0, norms, 1)).astype(np.float16)
        self.views = None if views is None else torch.from_numpy(views)
        self.present = None if views is None else (self.views != 0).any(dim=2)
        known = labels >= 0
        classes, ids = np.unique(labels[known], return_inverse=True)
        self.n_classes = len(classes)
        y = np.full(self.n, -1, np.int64)
        y[known] = ids.ravel()
        self.y = torch.from_numpy(y)
        self.labelled, self.unlabelled = np.flatnonzero(known), np.flatnonzero(~known)

    def metric(self, x: torch.Tensor) -> torch.Tensor:
        """Where neighbours are measured: the whitened principal space, or the inputs."""
        return x if self.projection is None else x @ self.projection

    def view(self, idx: torch.Tensor, gen: torch.Generator, dropout: float, noise: float) -> torch.Tensor:
        """An augmented view of each video: the mean of a random non-empty subset of its keyframes
        (each kept with probability 1/2), or the video's feature when it has none; then dropout
        and Gaussian noise (inputs have unit RMS, so `noise` is relative)."""
        x = self.x[idx]
        if self.views is not None:
            slots, present = self.views[idx].float(), self.present[idx]
            pick = (torch.rand(present.shape, generator=gen) < 0.5) & present
            one = torch.where(present, torch.rand(present.shape, generator=gen), -1.0).argmax(dim=1)
            pick[torch.arange(len(idx)), one] |= ~pick.any(dim=1)  # at least one keyframe
            pick &= present
            pooled = (slots * pick[..., None]).sum(dim=1)
            pooled = pooled / pooled.norm(dim=1, keepdim=True).clamp_min(1e-12)  # as features.pool does
            x = torch.where(pick.any(dim=1, keepdim=True), (pooled - self.mean) / self.scale, x)
        keep = (torch.rand(x.shape, generator=gen) >= dropout).float() / (1 - dropout)
        return x * keep + noise * torch.randn(x.shape, generator=gen)


class _Batches:
    """Batches of `size` items: a share of labelled items (their natural share, raised to
    `min_share` when they are few), the rest unlabelled, each cycling through its own shuffles."""

    def __init__(self, data: _Data, size: int, min_share: float, rng: np.random.Generator):
        n_labelled = len(data.labelled)
        share = max(round(size * n_labelled / data.n), min(n_labelled, math.ceil(size * min_share)))
        self.n_labelled = size if not len(data.unlabelled) else min(share, size)
        self.size = size
        self.labelled = _Cycle(data.labelled, rng)
        self.unlabelled = _Cycle(data.unlabelled, rng)

    def next(self) -> torch.Tensor:
        idx = np.concatenate([self.labelled.take(self.n_labelled), self.unlabelled.take(self.size - self.n_labelled)])
        return torch.from_numpy(idx)


class _Cycle:
    def __init__(self, items: np.ndarray, rng: np.random.Generator):
        self.items, self.rng = items, rng
        self.order, self.position = items[:0], 0

    def take(self, k: int) -> np.ndarray:
        out = [self.items[:0]]
        while k > 0:
            if self.position == len(self.order):
                self.order, self.position = self.rng.permutation(self.items), 0
            chunk = self.order[self.position:self.position + k]
            self.position += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return np.concatenate(out)


def _check_views(views: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    if views is None:
        return None
    views = np.asarray(views)
    n, dim = shape
    if views.ndim != 3 or views.shape[0] != n or views.shape[1] < 1 or views.shape[2] != dim:
        raise ValueError(f"views must be ({n}, k, {dim}) keyframe features, got shape {views.shape}")
    if views.dtype.kind != "f" or not np.isfinite(views).all():
        raise ValueError("views must be finite floats")
    return views


def _check_labels(labels: np.ndarray | None, n: int) -> np.ndarray:
    if labels is None:
        return np.full(n, -1, np.int64)
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be ({n},) integers, got {labels.dtype} {labels.shape}")
    if (labels < -1).any():
        raise ValueError("labels must be class ids >= 0, or -1 for unlabelled")
    return labels.astype(np.int64)
