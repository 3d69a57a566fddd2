"""A small ensemble of torch MLPs wrapped as a scikit-learn regressor, with the member spread as uncertainty.

Design:
- sklearn contract: ``__init__`` stores hyperparameters only; ``fit`` learns the input/target standardisation
  and one set of weights per member; learned attributes end in ``_``; ``predict`` checks it is fitted. So
  ``clone``, pipelines, grid search and grouped CV work unchanged.
- Members differ by seed (weight init, mini-batch order) and, with ``bootstrap=True``, by a bootstrap
  resample of the rows; the out-of-bag rows are that member's early-stopping set. Without bootstrap a random
  ``validation_fraction`` of the rows is held out instead. When too few rows are left for a validation set
  (tiny data) the member trains for the fixed ``max_epochs`` budget.
- The members are trained together as one batched network (``torch.baddbmm`` over a member axis; no weight
  is shared): on CPU, small MLPs are dominated by per-step overhead, so this is ~n_members times faster than
  training them one after another. Each member keeps the weights of its own best validation epoch.
- Learned weights are stored as NumPy arrays keyed like the torch ``state_dict`` (``members_``), so the
  fitted estimator pickles (pickle / cloudpickle, e.g. for MLflow) without torch tensors, and prediction is a
  float64 NumPy forward pass: deterministic, independent of batch size, and free of torch thread state.
- Threads: ``torch.set_num_threads`` is process-global. ``fit`` sets it to ``n_threads`` for the duration of
  training and restores the previous value afterwards (not safe against other Python threads training torch
  models concurrently in the same process; one level of parallelism only, e.g. Ray workers). Randomness runs
  inside ``torch.random.fork_rng`` so the global torch RNG is left untouched and a fixed ``random_state``
  gives identical weights on every fit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
_MIN_VALIDATION_ROWS = 5  # fewer held-out rows than this: no early stopping, fixed epoch budget


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n_threads)`` and restore the previous (global) value after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _BatchedMLP(nn.Module):
    """``n_members`` independent MLPs evaluated in one batched matmul per layer (members never share weights).

    Training the members together turns ``n_members`` small optimisation loops into one, which is what makes
    small networks fast on CPU (the per-step Python/dispatch overhead dominates their cost).
    """

    def __init__(
        self, n_members: int, n_features: int, hidden: Sequence[int], activation: str, dropout: float
    ):
        super().__init__()
        widths = [n_features, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(widths):
            bound = 1.0 / math.sqrt(fan_in)  # the torch nn.Linear default initialisation
            self.weights.append(nn.Parameter(torch.empty(n_members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_members, 1, fan_out).uniform_(-bound, bound)))
        self.activation = _ACTIVATIONS[activation]()
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (n_members, batch, n_features) -> (n_members, batch)."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.activation(h)
                if self.dropout > 0:
                    h = nn.functional.dropout(h, self.dropout, training=self.training)
        return h.squeeze(-1)

    def member_states(self) -> list[dict[str, np.ndarray]]:
        """One torch-style state dict per member ("layers.<i>.weight" is (out, in) like nn.Linear)."""
        states: list[dict[str, np.ndarray]] = [{} for _ in range(self.weights[0].shape[0])]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            for m, state in enumerate(states):
                state[f"layers.{i}.weight"] = w[m].detach().T.cpu().numpy().copy()
                state[f"layers.{i}.bias"] = b[m, 0].detach().cpu().numpy().copy()
        return states


class _AdamW:
    """AdamW (decoupled weight decay), numerically the update of ``torch.optim.AdamW`` with default betas.

    Written out because constructing a ``torch.optim`` optimiser imports torch._dynamo (and sympy): seconds
    of start-up in every fresh process (CLI, Ray worker) for ten lines of arithmetic.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float) -> None:
        self.params = params
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.beta1, self.beta2, self.eps = 0.9, 0.999, 1e-8
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        bias1 = 1.0 - self.beta1**self.t
        bias2_sqrt = math.sqrt(1.0 - self.beta2**self.t)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            g = p.grad
            p.mul_(1.0 - self.lr * self.weight_decay)
            m.lerp_(g, 1.0 - self.beta1)
            v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / bias1)


def _numpy_forward(state: dict[str, np.ndarray], X: np.ndarray, activation: str) -> np.ndarray:
    """Float64 forward pass of one member from its stored state dict (dropout is identity at inference)."""
    n_layers = len(state) // 2
    h = X
    for i in range(n_layers):
        h = h @ state[f"layers.{i}.weight"].T.astype(np.float64) + state[f"layers.{i}.bias"].astype(
            np.float64
        )
        if i < n_layers - 1:
            if activation == "relu":
                h = np.maximum(h, 0.0)
            elif activation == "silu":
                h = h / (1.0 + np.exp(-h))
            else:
                h = np.tanh(h)
    return np.asarray(h[:, 0])


class MLPEnsembleRegressor(RegressorMixin, BaseEstimator):
    """Ensemble of fully connected networks: ``predict`` gives the member mean, ``predict_std`` the spread.

    Parameters
    ----------
    hidden_layer_sizes : widths of the hidden layers.
    n_members : number of independently trained networks.
    max_epochs : epoch budget per member (the fixed budget when early stopping is off or impossible).
    learning_rate, weight_decay : AdamW settings.
    batch_size : mini-batch size (capped at the number of training rows).
    early_stopping : stop a member when its validation loss has not improved for ``n_iter_no_change``
        epochs and keep its best weights.
    validation_fraction : held-out share for early stopping when ``bootstrap=False``.
    n_iter_no_change : early-stopping patience in epochs.
    bootstrap : train each member on a bootstrap resample (out-of-bag rows are its validation set).
    activation : "relu", "silu" or "tanh".
    dropout : dropout probability after each hidden layer (0 disables it).
    random_state : seed (int), RandomState or None; a fixed int gives identical fits (at a fixed n_threads).
    n_threads : torch intra-op threads used during ``fit``.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (128, 64),
        *,
        n_members: int = 5,
        max_epochs: int = 300,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        early_stopping: bool = True,
        validation_fraction: float = 0.15,
        n_iter_no_change: int = 25,
        bootstrap: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
        random_state: int | np.random.RandomState | None = None,
        n_threads: int = 1,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_members = n_members
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.bootstrap = bootstrap
        self.activation = activation
        self.dropout = dropout
        self.random_state = random_state
        self.n_threads = n_threads

    # ------------------------------------------------------------------ validation
    def _validate_hyperparameters(self) -> tuple[int, ...]:
        hidden = tuple(int(h) for h in self.hidden_layer_sizes)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        for name in ("n_members", "max_epochs", "batch_size", "n_iter_no_change", "n_threads"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        return hidden

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any) -> MLPEnsembleRegressor:
        """Standardise X and y, then train ``n_members`` networks; returns self."""
        hidden = self._validate_hyperparameters()
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        x_mean = X.mean(axis=0)
        x_scale = X.std(axis=0)
        x_scale[~(x_scale > 1e-12)] = 1.0
        y_mean = float(y.mean())
        y_scale = float(y.std())
        if not y_scale > 1e-12:
            y_scale = 1.0
        Xs = ((X - x_mean) / x_scale).astype(np.float32)
        ys = ((y - y_mean) / y_scale).astype(np.float32)

        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=self.n_members + 1)
        rows = [self._member_rows(len(ys), np.random.RandomState(seed)) for seed in seeds[1:]]
        with torch_threads(self.n_threads):
            members, epochs = self._train_members(Xs, ys, rows, hidden, int(seeds[0]))

        self.x_mean_ = x_mean
        self.x_scale_ = x_scale
        self.y_mean_ = y_mean
        self.y_scale_ = y_scale
        self.members_ = members
        self.n_epochs_ = np.asarray(epochs, dtype=int)
        return self

    def _member_rows(self, n: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """Training rows and early-stopping rows of one member (empty validation: fixed epoch budget)."""
        if self.bootstrap:
            train_idx = rng.randint(0, n, size=n)
            val_idx = np.setdiff1d(np.arange(n), train_idx)
        else:
            perm = rng.permutation(n)
            n_val = round(float(self.validation_fraction) * n)
            val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        if not self.early_stopping or len(val_idx) < _MIN_VALIDATION_ROWS or len(train_idx) < 2:
            val_idx = np.empty(0, dtype=int)
            if not self.bootstrap:
                train_idx = np.arange(n)
        return train_idx, val_idx

    def _train_members(
        self,
        Xs: np.ndarray,
        ys: np.ndarray,
        rows: list[tuple[np.ndarray, np.ndarray]],
        hidden: tuple[int, ...],
        seed: int,
    ) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        """Train all members together; each keeps the weights of its own best validation epoch."""
        n_members = len(rows)
        n_train = len(rows[0][0])  # the same for every member (bootstrap: n; holdout: n - n_val)
        train_idx = torch.from_numpy(np.stack([r[0] for r in rows]).astype(np.int64))
        has_val = np.array([len(r[1]) > 0 for r in rows])
        val_mask = np.zeros((n_members, len(ys)), dtype=np.float32)
        for m, (_, val_idx) in enumerate(rows):
            val_mask[m, val_idx] = 1.0 / max(len(val_idx), 1)
        val_weight = torch.from_numpy(val_mask)
        x_all = torch.from_numpy(Xs)
        y_all = torch.from_numpy(ys)
        member_axis = torch.arange(n_members).unsqueeze(1)
        batch = min(int(self.batch_size), n_train)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _BatchedMLP(n_members, Xs.shape[1], hidden, self.activation, self.dropout)
            optimiser = _AdamW(list(net.parameters()), self.learning_rate, self.weight_decay)
            best_states = net.member_states()
            best_loss = np.full(n_members, np.inf)
            best_epoch = np.zeros(n_members, dtype=int)
            active = has_val.copy()  # members still early-stopping; members without validation run all epochs
            for epoch in range(1, int(self.max_epochs) + 1):
                net.train()
                order = torch.argsort(torch.rand(n_members, n_train), dim=1)
                for start in range(0, n_train, batch):
                    idx = train_idx[member_axis, order[:, start : start + batch]]
                    optimiser.zero_grad()
                    loss = ((net(x_all[idx]) - y_all[idx]) ** 2).mean(dim=1).sum()
                    loss.backward()
                    optimiser.step()
                if not has_val.any():
                    continue
                net.eval()
                with torch.no_grad():
                    pred = net(x_all.expand(n_members, -1, -1))
                    val_loss = (((pred - y_all) ** 2) * val_weight).sum(dim=1).numpy()
                improved = active & (val_loss < best_loss - 1e-7)
                if improved.any():
                    states = net.member_states()
                    for m in (int(i) for i in np.flatnonzero(improved)):
                        best_states[m], best_loss[m], best_epoch[m] = states[m], val_loss[m], epoch
                active &= ~(epoch - best_epoch >= self.n_iter_no_change)
                if not active.any() and has_val.all():
                    break
            final_states = net.member_states()
        epochs = []
        for m in range(n_members):
            if not has_val[m]:
                best_states[m], best_epoch[m] = final_states[m], epoch
            epochs.append(int(best_epoch[m]))
        return best_states, epochs

    # ------------------------------------------------------------------ predict
    def _member_predictions(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Xs = (X - self.x_mean_) / self.x_scale_
        preds = np.stack([_numpy_forward(state, Xs, self.activation) for state in self.members_])
        return np.asarray(preds * self.y_scale_ + self.y_mean_)

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Ensemble mean; with ``return_std=True`` also the member standard deviation (same units as y)."""
        preds = self._member_predictions(X)
        mean: np.ndarray = preds.mean(axis=0)
        if return_std:
            return mean, preds.std(axis=0)
        return mean

    def predict_std(self, X: Any) -> np.ndarray:
        """Standard deviation of the member predictions (0 for a single member)."""
        return np.asarray(self._member_predictions(X).std(axis=0))

    def predict_members(self, X: Any) -> np.ndarray:
        """Predictions of every member, shape (n_members, n_samples)."""
        return self._member_predictions(X)
