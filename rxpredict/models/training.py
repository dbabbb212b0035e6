"""The training loop every network here shares: mini-batches, AdamW, early stopping, a progress bar.

A caller that wants to follow training epoch by epoch (a progress bar in the
app, a worker writing its progress to the database) wraps the fit in
:func:`epoch_listener`: a context variable rather than a model parameter, so
that a callable never reaches a model's parameters (which bundles store as JSON).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch
from tqdm.auto import tqdm

#: Called after every epoch with (description, epochs done, most epochs).
EpochCallback = Callable[[str, int, int], None]
_LISTENER: ContextVar[EpochCallback | None] = ContextVar("rxpredict_epoch_listener", default=None)


@contextmanager
def epoch_listener(callback: EpochCallback) -> Iterator[None]:
    """Within the block, every :func:`train_early_stopping` of this thread or task calls ``callback`` after each
    epoch with its description (e.g. ``training response model 3/10``), the epochs done and the most epochs
    (early stopping can end a network before that)."""
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def train_early_stopping(network: torch.nn.Module, loss: Callable[[torch.nn.Module, list[torch.Tensor]], torch.Tensor],
                         data: Sequence[torch.Tensor], train_idx: np.ndarray, val_idx: np.ndarray,
                         rng: np.random.Generator, *, epochs: int, batch_size: int, learning_rate: float,
                         weight_decay: float, patience: int, description: str,
                         progress: bool = True, anneal: bool = False) -> list[tuple[int, float, float]]:
    """Train ``network`` in place; it ends at its best validation epoch, in eval mode.

    ``loss(network, batch)`` gets the rows of every tensor in ``data``; training
    stops after ``patience`` epochs without a better loss on ``val_idx``.
    Returns the history: (epoch, mean training loss, validation loss). A
    network with a ``param_groups(learning_rate, weight_decay)`` method sets
    its own groups (a part that learns at another rate, say). The callback of
    an enclosing :func:`epoch_listener` hears of every epoch. With ``anneal``
    the learning rate falls along a cosine from ``learning_rate`` to 0 over
    ``epochs`` (the last epochs then average out the noise of the batches).
    """
    listener = _LISTENER.get()
    groups = (network.param_groups(learning_rate, weight_decay) if hasattr(network, "param_groups")
              else network.parameters())
    optimiser = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs) if anneal else None
    best, best_state, stale, history = np.inf, None, 0, []
    val = torch.from_numpy(np.asarray(val_idx))
    bar = tqdm(range(epochs), desc=description, disable=not progress)
    for epoch in bar:
        network.train()
        order = torch.from_numpy(rng.permutation(train_idx))
        losses = []
        # A last batch of one row is dropped: batch normalisation (TabNet) needs two.
        for start in range(0, len(order) - 1, batch_size):
            value = loss(network, [d[order[start:start + batch_size]] for d in data])
            optimiser.zero_grad()
            value.backward()
            optimiser.step()
            losses.append(value.item())
        if schedule is not None:
            schedule.step()
        network.eval()
        with torch.no_grad():
            val_loss = loss(network, [d[val] for d in data]).item()
        history.append((epoch, float(np.mean(losses)), val_loss))
        bar.set_postfix(train=f"{np.mean(losses):.4f}", validation=f"{val_loss:.4f}")
        if listener is not None:
            listener(description, epoch + 1, epochs)
        if val_loss < best - 1e-5:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    bar.close()
    network.load_state_dict(best_state)
    network.eval()
    return history
