"""The flare-risk model: P(flare in the next 28 days) for a patient-day, from 56 days of streams and the context.

A small temporal convolution network reads the daily deviations from the
personal baseline together with their observed-day masks (a missing day is
masked, never a zero); its pooled states (all days, the last 7, the last day)
join the summary trends and the clinical context in a small head. Beside it,
the wide part adds one learned value per input and quantile bin (a
piecewise-constant effect of each input, penalised for every step so that
only the steps the data asks for remain: what boosted trees of single
splits do). It is trained with early stopping on held-out patients and
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

from rxpredict.models.encoding import PiecewiseLinearEncoder, QuantileBins
from rxpredict.models.overlap import _check_fitted
from rxpredict.models.params import ParamsMixin
from rxpredict.models.platt import platt_apply, platt_fit
from rxpredict.models.training import train_early_stopping
from rxpredict.monitoring.windows import Windows

LAST_DAYS = 7


class FlareNetwork(nn.Module):
    """Wide and deep: a table of each input's value per bin, plus a head over the convolved days.

    The wide part sums, over the tabular inputs, a learned value for the bin
    each falls in; a total-variation penalty on neighbouring bins keeps the
    few steps that matter. The deep part runs dilated 1-D convolutions over
    the days, pools them with the observed-day mask (all days, the last 7, the
    last day) and joins them with an embedding of the encoded tabular inputs.
    """

    def __init__(self, n_channels: int, n_encoded: int, n_features: int, wide_bins: int, hidden: int = 32,
                 dropout: float = 0.1, day_dropout: float = 0.0, wide_penalty: float = 1e-3,
                 wide_learning_rate: float = 1e-2) -> None:
        super().__init__()
        self.n_encoded, self.day_dropout = n_encoded, day_dropout
        self.wide_penalty, self.wide_learning_rate = wide_penalty, wide_learning_rate
        self.wide = nn.Parameter(torch.zeros(n_features, wide_bins + 1))  # the last column: missing
        self.conv = nn.Sequential(
            nn.Conv1d(n_channels, hidden, kernel_size=5, padding=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=4, dilation=2), nn.ReLU(),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=8, dilation=4), nn.ReLU(),
        )
        self.tabular = nn.Sequential(nn.Linear(n_encoded, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, sequence: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Log-odds of a flare, shape (n,); ``sequence`` is (n, days, channels), odd channels the seen masks;
        ``tabular`` the encoded inputs followed by each input's bin number."""
        encoded, bins = tabular[:, :self.n_encoded], tabular[:, self.n_encoded:].long()
        wide = self.wide[torch.arange(bins.shape[1]), bins].sum(1)
        h = self.conv(sequence.transpose(1, 2))
        seen = sequence[:, :, 1::2].amax(dim=2).unsqueeze(1)  # (n, 1, days): any stream seen that day
        pool = lambda m: (h * m).sum(2) / m.sum(2).clamp(min=1.0)  # noqa: E731
        last = torch.zeros_like(seen)
        last[:, :, -LAST_DAYS:] = 1.0
        states = [pool(seen), pool(seen * last), h[:, :, -1], self.tabular(encoded)]
        return wide + self.head(torch.cat(states, dim=1)).squeeze(1)

    def penalty(self) -> torch.Tensor:
        """The total variation of the wide table along the bins (the missing column apart)."""
        return self.wide_penalty * (self.wide[:, 1:-1] - self.wide[:, :-2]).abs().sum()

    def param_groups(self, learning_rate: float, weight_decay: float) -> list[dict]:
        """The wide table learns at its own rate, held by its penalty instead of weight decay."""
        rest = [p for name, p in self.named_parameters() if name != "wide"]
        return [{"params": [self.wide], "lr": self.wide_learning_rate, "weight_decay": 0.0},
                {"params": rest, "lr": learning_rate, "weight_decay": weight_decay}]


class FlareRiskModel(ParamsMixin):
    """Calibrated probability of a flare within 28 days (scikit-learn conventions: parameters here, state in ``_``).

    An ensemble: each member holds out a different random share of the
    patients to stop its training; its predictions for them are out of bag,
    and the Platt calibration is fitted on those. The members' log-odds are
    averaged.

    Parameters
    ----------
    hidden : width of the convolutions and the head
    dropout : dropout before the head
    day_dropout : share of days hidden at random while training (an unworn day), against over-fitting
    n_bins : bins of the piecewise-linear encoding of each summary and context column (the deep part)
    wide_bins : quantile bins of each column in the wide part's table
    wide_penalty : total-variation penalty on the wide table (per step, on the mean loss)
    wide_learning_rate : the wide table's learning rate
    n_members : networks in the ensemble
    epochs, batch_size, learning_rate, weight_decay, patience : training (AdamW, early stopping)
    validation_fraction : share of patients each member holds out
    seed : seeds numpy and torch
    progress : show a progress bar while training

    Attributes
    ----------
    tabular_names_ : the summary and context columns, in the network's order
    encoder_ : their piecewise-linear encoding (bins at the training quantiles)
    bins_ : their quantile bins for the wide table
    calibration_ : (intercept, slope) of the Platt recalibration, fitted out of bag
    networks_ : the fitted torch modules
    history_ : per member, (epoch, training loss, validation loss)
    validation_ : the out-of-bag rows' patient_id, date, label and calibrated probability
    """

    def __init__(self, hidden: int = 16, dropout: float = 0.5, day_dropout: float = 0.2, n_bins: int = 8,
                 wide_bins: int = 64, wide_penalty: float = 1e-3, wide_learning_rate: float = 1e-2,
                 n_members: int = 3, epochs: int = 80, batch_size: int = 1024, learning_rate: float = 3e-4,
                 weight_decay: float = 5e-2, patience: int = 6, validation_fraction: float = 0.25, seed: int = 0,
                 progress: bool = True) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.day_dropout = day_dropout
        self.n_bins = n_bins
        self.wide_bins = wide_bins
        self.wide_penalty = wide_penalty
        self.wide_learning_rate = wide_learning_rate
        self.n_members = n_members
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

    def _raw_tabular(self, windows: Windows) -> np.ndarray:
        return self._tabular_frame(windows).select(self.tabular_names_).cast(pl.Float64).to_numpy()

    def tabular(self, windows: Windows) -> np.ndarray:
        """The summary and context columns, piecewise-linearly encoded (a missing value has its own flag), then
        each one's bin number for the wide table."""
        _check_fitted(self, "encoder_")
        raw = self._raw_tabular(windows)
        return np.concatenate([self.encoder_.transform(raw), self.bins_.transform(raw)], axis=1)

    @property
    def feature_of_(self) -> np.ndarray:
        """The tabular input (index into ``tabular_names_``) of each column of :meth:`tabular`."""
        return np.concatenate([self.encoder_.feature_of_, np.arange(len(self.tabular_names_))])

    def new_network(self) -> FlareNetwork:
        """An untrained network shaped for this model's inputs (for training or loading weights)."""
        return FlareNetwork(self.n_channels_, len(self.encoder_.feature_of_), len(self.tabular_names_),
                            self.wide_bins, self.hidden, self.dropout, self.day_dropout, self.wide_penalty,
                            self.wide_learning_rate)

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
        raw = self._raw_tabular(windows)
        self.encoder_ = PiecewiseLinearEncoder(self.n_bins).fit(raw)
        self.bins_ = QuantileBins(self.wide_bins).fit(raw)
        self.n_channels_ = windows.sequence.shape[2]
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        sequence, tabular = windows.sequence, self.tabular(windows)
        data = [torch.from_numpy(sequence), torch.from_numpy(tabular), torch.from_numpy(y)]
        patient = windows.keys["patient_id"].to_numpy()
        patients = np.unique(patient)
        self.networks_, self.history_ = [], []
        oob_sum, oob_count = np.zeros(len(y)), np.zeros(len(y))
        for member in range(self.n_members):
            held = rng.choice(patients, size=max(1, int(len(patients) * self.validation_fraction)), replace=False)
            is_held = np.isin(patient, held)
            network = self.new_network()
            self.history_.append(train_early_stopping(
                network, _loss, data, np.flatnonzero(~is_held), np.flatnonzero(is_held), rng, epochs=self.epochs,
                batch_size=self.batch_size, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                patience=self.patience, progress=self.progress,
                description=f"training flare-risk model {member + 1}/{self.n_members}"))
            self.networks_.append(network)
            oob_sum[is_held] += _batched(network, sequence[is_held], tabular[is_held])
            oob_count[is_held] += 1
        seen = oob_count > 0
        raw = 1 / (1 + np.exp(-oob_sum[seen] / oob_count[seen]))
        self.calibration_ = platt_fit(raw, y[seen])
        self.validation_ = windows.keys.filter(pl.Series(seen)).with_columns(
            pl.Series("flare", y[seen].astype(bool)), pl.Series("p_flare_28d", platt_apply(raw, *self.calibration_)))
        return self

    # ----- predict ------------------------------------------------------------------------------------------
    def log_odds(self, sequence: np.ndarray, tabular: np.ndarray) -> np.ndarray:
        """The members' mean uncalibrated log-odds for prepared inputs."""
        _check_fitted(self, "networks_")
        return np.mean([_batched(network, sequence, tabular) for network in self.networks_], axis=0)

    def risk(self, log_odds: np.ndarray) -> np.ndarray:
        """Calibrated P(flare within 28 days) from the members' mean log-odds."""
        return platt_apply(1 / (1 + np.exp(-np.asarray(log_odds, dtype=np.float64))), *self.calibration_)

    def predict_proba(self, windows: Windows) -> np.ndarray:
        """Calibrated P(flare within 28 days) per window."""
        return self.risk(self.log_odds(windows.sequence, self.tabular(windows)))


def _batched(network: FlareNetwork, sequence: np.ndarray, tabular: np.ndarray, size: int = 4096) -> np.ndarray:
    """One network's log-odds, in batches."""
    out = []
    with torch.no_grad():
        for start in range(0, len(sequence), size):
            out.append(network(torch.from_numpy(sequence[start:start + size]),
                               torch.from_numpy(tabular[start:start + size])).numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros(0)


def _loss(network: FlareNetwork, batch: list[torch.Tensor]) -> torch.Tensor:
    sequence, tabular, y = batch
    if network.training and network.day_dropout > 0:  # days dropped at random, as if the device was not worn
        kept = (torch.rand(sequence.shape[0], sequence.shape[1], 1) >= network.day_dropout).to(sequence.dtype)
        sequence = sequence * kept
    loss = F.binary_cross_entropy_with_logits(network(sequence, tabular), y)
    return loss + network.penalty() if network.training else loss
