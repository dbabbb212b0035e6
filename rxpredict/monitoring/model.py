"""The flare-risk model: P(flare in the next 28 days) for a patient-day, from 56 days of streams and the context.

A small temporal convolution network reads the daily deviations from the
personal baseline together with their observed-day masks (a missing day is
masked, never a zero); its pooled states (all days, the last 7, the last day)
join the summary trends and the clinical context in a small head that gives
the log-odds. It is trained with early stopping on held-out patients and
Platt-recalibrated on them.

>>> model = FlareRiskModel(seed=0).fit(windows, labels)      # doctest: +SKIP
>>> model.predict_proba(build_windows(registry, keys))        # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import polars as pl
import torch
from torch import nn
from torch.nn import functional as F

from rxpredict.models.overlap import _check_fitted
from rxpredict.models.params import ParamsMixin
from rxpredict.models.platt import platt_apply, platt_fit
from rxpredict.models.training import train_early_stopping
from rxpredict.monitoring.windows import Windows

Z_LIMIT = 6.0
LAST_DAYS = 7


class FlareNetwork(nn.Module):
    """Dilated 1-D convolutions over the days, masked pooling, and a head over pooled states and tabular inputs."""

    def __init__(self, n_channels: int, n_tabular: int, hidden: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(n_channels, hidden, kernel_size=5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=4, dilation=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=8, dilation=4), nn.ReLU(),
        )
        self.tabular = nn.Sequential(nn.Linear(n_tabular, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, sequence: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Log-odds of a flare, shape (n,); ``sequence`` is (n, days, channels), odd channels the seen masks."""
        h = self.conv(sequence.transpose(1, 2))
        seen = sequence[:, :, 1::2].amax(dim=2).unsqueeze(1)  # (n, 1, days): any stream seen that day
        pool = lambda m: (h * m).sum(2) / m.sum(2).clamp(min=1.0)  # noqa: E731
        last = torch.zeros_like(seen)
        last[:, :, -LAST_DAYS:] = 1.0
        states = [pool(seen), pool(seen * last), h[:, :, -1], self.tabular(tabular)]
        return self.head(torch.cat(states, dim=1)).squeeze(1)


class FlareRiskModel(ParamsMixin):
    """Calibrated probability of a flare within 28 days (scikit-learn conventions: parameters here, state in ``_``).

    Parameters
    ----------
    hidden : width of the convolutions and the head
    dropout : dropout before the head
    epochs, batch_size, learning_rate, weight_decay, patience : training (AdamW, early stopping)
    validation_fraction : share of patients held out to stop training and fit the calibration
    seed : seeds numpy and torch
    progress : show a progress bar while training

    Attributes
    ----------
    tabular_names_ : the summary and context columns, in the network's order
    mean_, scale_ : their standardisation (training rows)
    calibration_ : (intercept, slope) of the Platt recalibration, fitted on the held-out patients
    network_ : the fitted torch module
    history_ : (epoch, training loss, validation loss)
    validation_ : the held-out rows' patient_id, date, label and calibrated probability
    """

    def __init__(self, hidden: int = 32, dropout: float = 0.1, epochs: int = 60, batch_size: int = 256,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, patience: int = 6,
                 validation_fraction: float = 0.25, seed: int = 0, progress: bool = True) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.progress = progress

    # ----- inputs -------------------------------------------------------------------------------------------
    def _tabular_frame(self, windows: Windows) -> pl.DataFrame:
        return pl.concat([windows.summary, windows.context], how="horizontal")

    def tabular(self, windows: Windows) -> np.ndarray:
        """Standardised summary and context columns (NaN -> 0, the training mean), clipped to +/- 6."""
        _check_fitted(self, "network_")
        X = self._tabular_frame(windows).select(self.tabular_names_).cast(pl.Float64).to_numpy()
        return np.clip(np.nan_to_num((X - self.mean_) / self.scale_), -Z_LIMIT, Z_LIMIT).astype(np.float32)

    def new_network(self) -> FlareNetwork:
        """An untrained network shaped for this model's inputs (for training or loading weights)."""
        return FlareNetwork(self.n_channels_, len(self.tabular_names_), self.hidden, self.dropout)

    # ----- fit ----------------------------------------------------------------------------------------------
    def fit(self, windows: Windows, labels: np.ndarray) -> "FlareRiskModel":
        """Fit on labelled windows (``labels`` 0/1 per row; rows without a label must be left out)."""
        y = np.asarray(labels, dtype=np.float32)
        if y.shape != (len(windows),) or np.isnan(y).any():
            raise ValueError("labels must be one 0/1 value per window, without missing labels")
        if len(windows) < 200 or y.sum() < 20 or (1 - y).sum() < 20:
            raise ValueError(f"{len(windows)} labelled patient-days with {int(y.sum())} flares: too few to fit")
        frame = self._tabular_frame(windows)
        self.tabular_names_ = [c for c in frame.columns if frame[c].drop_nulls().n_unique() > 1]
        X = frame.select(self.tabular_names_).cast(pl.Float64).to_numpy()
        self.mean_ = np.nan_to_num(np.nanmean(X, axis=0))
        self.scale_ = np.nan_to_num(np.nanstd(X, axis=0), nan=1.0)
        self.scale_[self.scale_ == 0] = 1.0
        self.n_channels_ = windows.sequence.shape[2]
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        patient = windows.keys["patient_id"].to_numpy()
        patients = np.unique(patient)
        held = rng.choice(patients, size=max(1, int(len(patients) * self.validation_fraction)), replace=False)
        is_held = np.isin(patient, held)
        self.network_ = self.new_network()
        data = [torch.from_numpy(windows.sequence), torch.from_numpy(self.tabular(windows)), torch.from_numpy(y)]
        self.history_ = train_early_stopping(
            self.network_, _loss, data, np.flatnonzero(~is_held), np.flatnonzero(is_held), rng, epochs=self.epochs,
            batch_size=self.batch_size, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
            patience=self.patience, description="training flare-risk model", progress=self.progress)
        self.calibration_ = (0.0, 1.0)
        raw = self.predict_proba(windows.take(np.flatnonzero(is_held)))
        self.calibration_ = platt_fit(raw, y[is_held])
        self.validation_ = windows.keys.filter(pl.Series(is_held)).with_columns(
            pl.Series("flare", y[is_held].astype(bool)), pl.Series("p_flare_28d", platt_apply(raw, *self.calibration_)))
        return self

    # ----- predict ------------------------------------------------------------------------------------------
    def log_odds(self, sequence: np.ndarray, tabular: np.ndarray) -> np.ndarray:
        """The network's uncalibrated log-odds for prepared inputs, in batches."""
        _check_fitted(self, "network_")
        out = []
        with torch.no_grad():
            for start in range(0, len(sequence), 4096):
                out.append(self.network_(torch.from_numpy(sequence[start:start + 4096]),
                                         torch.from_numpy(tabular[start:start + 4096])).numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def predict_proba(self, windows: Windows) -> np.ndarray:
        """Calibrated P(flare within 28 days) per window."""
        z = self.log_odds(windows.sequence, self.tabular(windows))
        return platt_apply(1 / (1 + np.exp(-z.astype(np.float64))), *self.calibration_)


def _loss(network: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
    sequence, tabular, y = batch
    return F.binary_cross_entropy_with_logits(network(sequence, tabular), y)
