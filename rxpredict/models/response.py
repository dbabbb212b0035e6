"""The 24-week response model: what would happen under each therapy option, for one patient at one date.

:class:`ResponseModel` fits the multimodal network (models/network.py) on a
cohort's labelled episodes and predicts, for every option, P(EULAR good or
moderate response), P(good response), P(DAS28 remission) and the expected
DAS28 change, each with the option's ``support`` flag and whether the patient
is out of distribution.

The probabilities are tails of one predicted distribution per option: the
network gives the expected DAS28 change and a spread, and response, good
response and remission are the chances that the improvement clears each
outcome's threshold from the patient's baseline DAS28 (models/outcome.py).
Training maximises the likelihood of the observed change (and of the labels
where only they are known, as for a stop for inefficacy before week 24).

Confounding: each episode is weighted by the stabilised inverse of the
estimated probability of the option it received (PropensityModel), clipped,
so that the heads learn outcomes as if options had been given more evenly.

Example
-------
>>> model = ResponseModel(seed=1).fit(cohort.frame)          # doctest: +SKIP
>>> model.predict_options(cohort.frame.head(1))               # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import polars as pl
import torch
from scipy import stats

from rxpredict.features import FEATURE_BLOCKS, MASK_COLUMNS, feature_columns
from rxpredict.models.design import feature_matrix, observed_moments
from rxpredict.models.network import ResponseNetwork
from rxpredict.models.outcome import Thresholds, standard_scores
from rxpredict.models.overlap import OutOfDistribution, PropensityModel, _check_fitted
from rxpredict.models.params import ParamsMixin
from rxpredict.models.platt import platt_apply, platt_fit
from rxpredict.models.training import train_early_stopping
from rxpredict.schemas import load_contract

LABELS = ("response", "good_response", "remission")
PREDICTIONS = ("p_response", "p_response_low", "p_response_high", "p_good", "p_good_low", "p_good_high",
               "p_remission", "p_remission_low", "p_remission_high", "expected_das28_change")
Z_LIMIT = 5.0
#: The outcomes' thresholds (stateless; one instance serves every call).
THRESHOLDS = Thresholds()
#: The baseline DAS28 columns the outcome thresholds are measured from (DAS28-CRP, else DAS28-ESR).
BASELINE_DAS28 = {"crp": f"{FEATURE_BLOCKS['clinical']}das28_crp", "esr": f"{FEATURE_BLOCKS['clinical']}das28_esr"}


def label_baseline(frame: pl.DataFrame, labelled: bool = False) -> np.ndarray:
    """Each row's baseline DAS28 on the version its outcome is (or would be) measured on; NaN where unknown.

    DAS28-CRP where the baseline has it, else DAS28-ESR, as the cohort's labels do; for ``labelled`` rows
    the version the label was actually measured on (``das28_version``: ESR also where the follow-up lacked
    CRP). Scoring never looks at the follow-up, so it uses the first rule.
    """
    crp, esr = (feature_matrix(frame, [c])[:, 0] for c in BASELINE_DAS28.values())
    baseline = np.where(np.isnan(crp), esr, crp)
    if labelled and "das28_version" in frame.columns:
        version = frame["das28_version"].fill_null("").to_numpy()
        baseline = np.where(version == "esr", esr, np.where(version == "crp", crp, baseline))
    return baseline


class ResponseModel(ParamsMixin):
    """Multimodal TARNet-style network with propensity weighting; scikit-learn conventions.

    Parameters
    ----------
    block_dim, hidden, dropout : network size (per-block embedding, shared layer) and dropout
    shared_penalty, option_penalty : L2 penalties on the wide part's shared and per-option weights
    encoder : the clinical block's encoder, "mlp" or "tabnet" (pytorch-tabnet); docs/benchmarks.md compares them
    epochs, batch_size, learning_rate, weight_decay : optimisation (AdamW)
    patience : epochs without a better validation loss before stopping early
    validation_fraction : share of patients each member leaves out (early stopping, out-of-bag calibration)
    max_weight : inverse-propensity weights are clipped to [1/max_weight, max_weight]
    n_members : networks in the ensemble; their spread gives the intervals
    interval : coverage of the intervals (0.90: 5th to 95th percentile)
    seed : random seed (split, initialisation, batches)
    progress : show a progress bar while training

    Attributes
    ----------
    options_ : list of str
    columns_ : list of str, the feature columns (block features and masks) in matrix order
    blocks_ : dict of block -> its feature columns
    propensity_ : PropensityModel
    ood_ : OutOfDistribution
    networks_ : the fitted torch modules, one per ensemble member
    change_scale_ : float, SD of the observed DAS28 change (the network's unit)
    baseline_fill_ : float, the baseline DAS28 assumed where a row has none (the training mean)
    calibration_ : array (3, 2), Platt intercept and slope per probability, fitted out of bag
    history_ : per member, a list of (epoch, train loss, validation loss)
    """

    def __init__(self, block_dim: int = 16, hidden: int = 64, dropout: float = 0.1, shared_penalty: float = 1e-4,
                 option_penalty: float = 1e-3, encoder: str = "mlp", epochs: int = 200,
                 batch_size: int = 128, learning_rate: float = 2e-3, weight_decay: float = 1e-4, patience: int = 12,
                 validation_fraction: float = 0.2, max_weight: float = 10.0, n_members: int = 10,
                 interval: float = 0.90, seed: int = 0, progress: bool = True) -> None:
        self.block_dim = block_dim
        self.hidden = hidden
        self.dropout = dropout
        self.shared_penalty = shared_penalty
        self.option_penalty = option_penalty
        self.encoder = encoder
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.max_weight = max_weight
        self.n_members = n_members
        self.interval = interval
        self.seed = seed
        self.progress = progress

    # ----- data ---------------------------------------------------------------------------------------------
    def _set_blocks(self, blocks: dict[str, list[str]]) -> None:
        """The feature columns by block, and where each block and its mask sit in the matrix."""
        self.blocks_ = blocks
        masks = [MASK_COLUMNS[b] for b in blocks]
        self.columns_ = [c for cols in blocks.values() for c in cols] + masks
        offsets = np.cumsum([0, *(len(c) for c in blocks.values())])
        self._block_index = [np.arange(a, b) for a, b in zip(offsets[:-1], offsets[1:])]
        self._mask_index = np.arange(offsets[-1], offsets[-1] + len(masks))

    def _new_network(self) -> ResponseNetwork:
        """An untrained network shaped for this model's blocks and options (for training or loading weights)."""
        return ResponseNetwork([len(c) for c in self.blocks_.values()], len(self.options_), self.block_dim,
                               self.hidden, self.dropout, self.shared_penalty, self.option_penalty,
                               self.encoder)

    def _tensors(self, frame: pl.DataFrame, labelled: bool = False
                 ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, np.ndarray]:
        """Standardised block features (NaN -> 0), block masks, the baseline DAS28 the outcomes are measured
        from (:func:`label_baseline`, in DAS28 units), and the raw matrix (for the overlap models).

        z-scores are clipped to +/- ``Z_LIMIT``: a value far beyond the training data saturates instead of
        driving the network to extrapolate (such patients are flagged ``ood`` anyway).
        """
        X = feature_matrix(frame, self.columns_)
        Z = np.clip(np.nan_to_num((X - self.mean_) / self.scale_, nan=0.0), -Z_LIMIT, Z_LIMIT).astype(np.float32)
        blocks = [torch.from_numpy(Z[:, idx]) for idx in self._block_index]
        masks = torch.from_numpy(np.nan_to_num(X[:, self._mask_index], nan=0.0).astype(np.float32))
        baseline = np.nan_to_num(label_baseline(frame, labelled), nan=self.baseline_fill_)
        return blocks, masks, torch.from_numpy(baseline.astype(np.float32)), X

    def _scores(self, network: ResponseNetwork, out: torch.Tensor, baseline: torch.Tensor,
                therapy: torch.Tensor | None = None) -> torch.Tensor:
        """Standard scores z (rows, [options,] 3) of response, good response and remission: P = Phi(z).

        ``out`` is the network's output for every option, or (with ``therapy``) for each row's own option, in
        units of the change's SD; ``baseline`` is the baseline DAS28.
        """
        scale = network.log_scale.exp()
        return standard_scores(out[..., 0], scale if therapy is None else scale[therapy],
                               THRESHOLDS(baseline) / self.change_scale_)

    # ----- fit ----------------------------------------------------------------------------------------------
    def fit(self, cohort: pl.DataFrame) -> "ResponseModel":
        """Fit on a cohort frame (``rxpredict.cohort.build_cohort(...).frame``): its labelled episodes."""
        self.options_ = load_contract().option_names
        labelled = cohort.filter(pl.col("therapy").is_not_null() & pl.col("response").is_not_null())
        if labelled.height < 50:
            raise ValueError(f"only {labelled.height} labelled episodes: too few to fit a response model")
        blocks = feature_columns(cohort)
        self._set_blocks({b: blocks[b] for b in FEATURE_BLOCKS if blocks.get(b)})

        X = feature_matrix(labelled, self.columns_)
        self.mean_, self.scale_ = observed_moments(X)

        therapy = labelled["therapy"].to_list()
        self.propensity_ = PropensityModel(options=self.options_).fit(X, therapy)
        self.ood_ = OutOfDistribution().fit(X)
        t = np.array([self.options_.index(o) for o in therapy])
        p_given = self.propensity_.predict_proba(X)[np.arange(len(t)), t]
        marginal = np.bincount(t, minlength=len(self.options_))[t] / len(t)
        weights = np.clip(marginal / np.maximum(p_given, 1e-6), 1 / self.max_weight, self.max_weight)
        weights = weights / weights.mean()

        y = labelled.select(pl.col(LABELS).cast(pl.Float32)).to_numpy()
        change = labelled["das28_change"].cast(pl.Float32).fill_null(float("nan")).to_numpy()
        observed = change[np.isfinite(change)]  # none where the labels are probabilities (the learnable limit)
        self.change_scale_ = float(observed.std()) if observed.size > 1 and observed.std() > 0 else 1.0
        baseline = label_baseline(labelled, labelled=True)
        self.baseline_fill_ = float(np.nanmean(baseline)) if np.isfinite(baseline).any() else 5.0
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        blocks_t, masks_t, baseline_t, _ = self._tensors(labelled, labelled=True)
        data = [*blocks_t, masks_t, baseline_t, torch.from_numpy(t), torch.from_numpy(y.copy()),
                torch.from_numpy(change / self.change_scale_), torch.from_numpy(weights.astype(np.float32))]
        patient = labelled["patient_id"].to_numpy()
        self.networks_, self.history_, oob = self._fit_members(data, patient, t, rng)
        seen = ~np.isnan(oob[:, 0])
        self.calibration_ = np.array([platt_fit(oob[seen, k], y[seen, k]) for k in range(len(LABELS))])
        return self

    def _fit_members(self, data: list[torch.Tensor], patient: np.ndarray, t: np.ndarray,
                     rng: np.random.Generator) -> tuple[list[ResponseNetwork], list, np.ndarray]:
        """The ensemble, its histories, and each episode's out-of-bag probabilities at its option (NaN if none).

        Each member learns from a random share of the patients; the rest stop it early and, being unseen by
        it, give the out-of-bag predictions the calibration is fitted on.
        """
        *blocks, masks, baseline, _, _, _, _ = data
        patients = np.unique(patient)
        networks, histories = [], []
        oob_sum, oob_count = np.zeros((len(t), len(LABELS))), np.zeros(len(t))
        for member in range(self.n_members):
            held = rng.choice(patients, size=max(1, int(len(patients) * self.validation_fraction)), replace=False)
            is_held = np.isin(patient, held)
            network, history = self._train_member(data, np.flatnonzero(~is_held), np.flatnonzero(is_held), rng,
                                                  f"training response model {member + 1}/{self.n_members}")
            networks.append(network)
            histories.append(history)
            rows, held_t = torch.from_numpy(is_held), torch.from_numpy(t[is_held])
            with torch.no_grad():
                given = network([b[rows] for b in blocks], masks[rows])[torch.arange(len(held_t)), held_t]
                oob_sum[is_held] += torch.special.ndtr(self._scores(network, given, baseline[rows], held_t)).numpy()
            oob_count[is_held] += 1
        with np.errstate(invalid="ignore"):
            return networks, histories, oob_sum / oob_count[:, None]

    def _member_predictions(self, blocks: list[torch.Tensor], masks: torch.Tensor,
                            baseline: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Every member's probabilities (members, 3, rows, options) and expected change in SD units (members,
        rows, options), float32."""
        probabilities, changes = [], []
        with torch.no_grad():
            for network in self.networks_:
                out = network(blocks, masks)
                probabilities.append(np.moveaxis(torch.special.ndtr(self._scores(network, out, baseline)).numpy(),
                                                 -1, 0))
                changes.append(out[..., 0].numpy())
        return np.stack(probabilities), np.stack(changes)

    def _train_member(self, data: list[torch.Tensor], train_idx: np.ndarray, val_idx: np.ndarray,
                      rng: np.random.Generator, description: str) -> tuple[ResponseNetwork, list]:
        """One network, trained with early stopping on ``val_idx``; returns it at its best epoch and its history."""
        network = self._new_network()
        history = train_early_stopping(network, self._loss, data, train_idx, val_idx, rng, epochs=self.epochs,
                                       batch_size=self.batch_size, learning_rate=self.learning_rate,
                                       weight_decay=self.weight_decay, patience=self.patience,
                                       description=description, progress=self.progress)
        return network, history

    def _loss(self, network: ResponseNetwork, batch: list[torch.Tensor]) -> torch.Tensor:
        """Weighted negative log-likelihood: of the observed change (normal), else of the three labels.

        Episodes without a change (a stop for inefficacy before the follow-up, or labels given as
        probabilities) count through their labels, each a tail of the same normal.
        """
        *blocks, masks, baseline, t, y, change, w = batch
        out = network(blocks, masks)[torch.arange(len(t)), t]  # the head of the option received
        log_scale = network.log_scale[t]
        gaussian = 0.5 * ((torch.nan_to_num(change) - out[:, 0]) / log_scale.exp()) ** 2 + log_scale
        z = self._scores(network, out, baseline, t)
        bernoulli = -(y * torch.special.log_ndtr(z) + (1 - y) * torch.special.log_ndtr(-z)).sum(dim=1)
        loss = (w * torch.where(torch.isnan(change), bernoulli, gaussian)).sum() / w.sum()
        return loss + network.penalty() if network.training else loss

    # ----- predict ------------------------------------------------------------------------------------------
    def predict_options(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One row per (episode, option): calibrated probabilities with their intervals, the expected DAS28
        change, ``support`` and ``ood``.

        ``rows`` is a cohort frame (any episodes, labelled or not; ``therapy``
        may be null, as for a patient scored on a chosen date). A probability's
        interval spans the ensemble members' spread (mean +/- q SD at the
        model's ``interval``, q from Student's t with members - 1 degrees of
        freedom: the SD is itself estimated from few members), passed through
        the same calibration as the point.
        Each member learnt from a share f = 1 - ``validation_fraction`` of the
        patients, and estimates from a share f of the data spread sqrt((1 - f) / f)
        times as much as the full-data estimate varies (subsampling without
        replacement), so the members' SD is scaled by sqrt(f / (1 - f)) (2 at f = 0.8).
        """
        _check_fitted(self, "networks_")
        blocks, masks, baseline, X = self._tensors(rows)
        p, changes = self._member_predictions(blocks, masks, baseline)  # p: (members, 3, n, options)
        mean = p.mean(axis=0)
        f = 1 - self.validation_fraction
        if len(p) > 1:
            q = stats.t.ppf(0.5 + self.interval / 2, df=len(p) - 1)
            half = q * np.sqrt(f / (1 - f)) * p.std(axis=0, ddof=1)
        else:
            half = np.zeros_like(mean)
        columns: dict[str, np.ndarray] = {}
        for k, name in enumerate(("p_response", "p_good", "p_remission")):
            point, low, high = (self._calibrate(k, v) for v in (mean[k], mean[k] - half[k], mean[k] + half[k]))
            columns[name], columns[f"{name}_low"], columns[f"{name}_high"] = point, low, high
        for suffix in ("", "_low", "_high"):  # good response is a kind of response: keep it so after calibration
            columns[f"p_good{suffix}"] = np.minimum(columns[f"p_good{suffix}"], columns[f"p_response{suffix}"])
        n, k = X.shape[0], len(self.options_)
        return pl.DataFrame({
            "patient_id": np.repeat(rows["patient_id"].to_numpy(), k),
            "index_date": rows["index_date"].gather(np.repeat(np.arange(n), k)),
            "therapy": np.tile(np.array(self.options_), n),
            **{c: columns[c].ravel() for c in PREDICTIONS if c in columns},
            "expected_das28_change": changes.mean(axis=0).ravel() * self.change_scale_,
            "support": self.propensity_.support(X).ravel().astype(str),
            "ood": np.repeat(self.ood_.predict(X), k),
        })

    def _calibrate(self, k: int, p: np.ndarray) -> np.ndarray:
        """Platt recalibration of probability ``k`` (fitted out of bag), on probabilities clipped into (0, 1)."""
        return platt_apply(p, *self.calibration_[k])
