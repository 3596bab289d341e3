"""``ShallowClassifier`` and ``ShallowRegressor``: the slides' network and batch gradient descent as scikit-learn
estimators.

    pip install 'torch_shallow[sklearn]'

Not imported by ``import torch_shallow``, so that the package does not need scikit-learn.
"""

from __future__ import annotations

import copy
import numbers
import os
import warnings
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state, check_scalar
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor

from .activations import ACTIVATIONS
from .functional import probabilities, shallow_net
from .hyperparameters import CONSTRAINTS, DTYPES, dtype_name
from .labels import one_hot, stratified_split
from .module import ShallowNet
from .run import default_run_dir
from .trainer import History, TrainConfig, fit


class _ShallowEstimator(BaseEstimator):
    """What :class:`ShallowClassifier` and :class:`ShallowRegressor` share: their parameters and the checks of them,
    training by :func:`~torch_shallow.fit` with early stopping and warm starts, and the logits in float64."""

    # set by fit
    model_: ShallowNet
    n_iter_: int
    loss_curve_: list[float]
    validation_scores_: list[float] | None
    best_validation_score_: float | None

    def __init__(
        self,
        hidden_features: int = 4,
        activation: str = "sigmoid",
        lr: float = 1.0,
        max_epochs: int = 2000,
        tol: float = 1e-6,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: int | np.random.RandomState | None = None,
        warm_start: bool = False,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
    ) -> None:
        self.hidden_features = hidden_features
        self.activation = activation
        self.lr = lr
        self.max_epochs = max_epochs
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.warm_start = warm_start
        self.log_dir = log_dir
        self.device = device
        self.dtype = dtype

    def _train(self, model: ShallowNet, X: np.ndarray, y: np.ndarray, seed: int, warm: bool, stratify: bool) -> History:
        """Train ``model`` on (X, y) and keep it, with the epochs, the loss curve and the validation scores; hold out
        ``validation_fraction`` of the data (stratified by y for a classifier) for early stopping."""
        val = None
        if self.early_stopping:
            # a classifier's split keeps each class's share; a regressor's is one class, drawn at random
            classes = torch.as_tensor(y) if stratify else torch.zeros(len(y), dtype=torch.long)
            train_rows, val_rows = (rows.numpy() for rows in stratified_split(classes, self.validation_fraction, seed))
            X, X_val, y, y_val = X[train_rows], X[val_rows], y[train_rows], y[val_rows]
            val = (_tensor(X_val, model.W1), _targets(y_val, model))
        if self.early_stopping:
            log_every = 1  # the validation cost at every epoch: n_iter_no_change counts epochs, as in MLPClassifier
        elif self.log_dir is None:
            log_every = self.max_epochs  # nothing to log: scalars at every few epochs would double an epoch's time
        else:
            log_every = None  # TensorBoard's 1,000 points
        config = TrainConfig(
            lr=self.lr,
            max_epochs=self.max_epochs,
            tol=self.tol,
            log_every=log_every,
            progress=False,
            log_dir=None if self.log_dir is None else default_run_dir(type(self).__name__, root=self.log_dir),
            patience=self.n_iter_no_change if self.early_stopping else None,
        )
        history = fit(model, _tensor(X, model.W1), _targets(y, model), config, val=val, hparams={"seed": seed})

        earlier = (self.n_iter_, self.loss_curve_, self.validation_scores_ or []) if warm else (0, [], [])
        self.model_ = model
        self.n_iter_, self.loss_curve_ = earlier[0] + history.epochs, earlier[1] + history.costs
        self.validation_scores_ = self.best_validation_score_ = None
        if self.early_stopping:
            # one score per epoch, θ(0)..θ(n_iter - 1), as MLPClassifier keeps; the evaluation that stopped training,
            # of θ(n_iter), is the history's last
            self.validation_scores_ = earlier[2] + [-J for J in history.val_costs[: history.epochs]]
            best_epoch = cast(int, history.best_epoch)  # early stopping found one: every epoch is evaluated
            self.best_validation_score_ = -history.val_costs[history.val_epochs.index(best_epoch)]
        return history

    def _warn_unless_converged(self, history: History) -> None:
        if history.stop_reason == "max_epochs":
            warnings.warn(
                f"{type(self).__name__} reached max_epochs={self.max_epochs} with the training cost still "
                f"changing by tol={self.tol:g} or more per epoch; raise max_epochs or lr for a converged "
                f"model",
                ConvergenceWarning,
                stacklevel=2,
            )

    def _logits(self, X: Any) -> np.ndarray:
        """Z2 (n, 1 or K) of X, after the same checks of X as in ``fit``, computed in float64 from model_'s θ.

        float64 whatever the model's dtype: a float32 matrix product rounds a row's result differently depending on
        the rows beside it (a single row takes BLAS's matrix-vector path), and a sample's prediction must not depend
        on its batch; σ in float32 would also round distinct large logits to one probability, so that
        ``predict_proba`` would rank samples otherwise than ``decision_function``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        m = self.model_
        with torch.no_grad():
            W1, b1, W2, b2 = (cast(Tensor, p).double() for p in (m.W1, m.b1, m.W2, m.b2))  # both biases: _new_model
            return shallow_net(_tensor(X, W1), W1, b1, W2, b2, m.activation).cpu().numpy()

    def _check_params(self) -> None:
        """The constructor's parameters, checked at fit time as scikit-learn does: ``__init__`` only stores them,
        and ``set_params`` may change them."""
        for name in ("hidden_features", "lr", "max_epochs", "tol", "validation_fraction", "n_iter_no_change"):
            value, bounds = getattr(self, name), CONSTRAINTS[name].sklearn_bounds()
            if isinstance(value, (bool, np.bool_)):  # numbers.Integral, to Python, but surely a mistake here
                raise TypeError(
                    f"{name} must be an instance of {cast(type, bounds['target_type']).__name__}, not bool."
                )
            check_scalar(value, name, **bounds)
        for name in ("early_stopping", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, options in (("activation", ACTIVATIONS), ("dtype", DTYPES)):
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {sorted(options)}, got {getattr(self, name)!r}")
        if not (self.log_dir is None or isinstance(self.log_dir, (str, os.PathLike))):
            raise TypeError(f"log_dir must be a path or None, got {type(self.log_dir).__name__}")
        try:
            check_random_state(self.random_state)
        except ValueError as error:
            raise ValueError(
                f"random_state must be None, an int in [0, 2**32 - 1] or a numpy RandomState, got "
                f"{self.random_state!r} ({error})"
            ) from None
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {self.device!r}") from None
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or a CUDA device such as 'cuda:0', got {self.device!r}")
        if device.type == "cuda" and (device.index or 0) >= count:
            raise ValueError(f"device={self.device!r}, but this machine has {count} CUDA device(s)")

    def _warm_model(self) -> ShallowNet:
        """A copy of ``model_`` to train on, on ``device``: a fit that fails leaves the fitted estimator as it was."""
        fitted = {
            "hidden_features": self.model_.hidden_features,
            "activation": self.model_.activation,
            "dtype": dtype_name(self.model_.W1.dtype),
        }
        for name, value in fitted.items():
            if getattr(self, name) != value:
                raise ValueError(
                    f"warm_start=True continues model_, whose {name} is {value!r}, not "
                    f"{getattr(self, name)!r}. Set warm_start=False to start afresh."
                )
        return copy.deepcopy(self.model_).to(self.device)


class ShallowClassifier(ClassifierMixin, _ShallowEstimator):
    """A :class:`~torch_shallow.ShallowNet` trained by full-batch gradient descent, as a scikit-learn classifier.

    Two classes train the slides' network, one sigmoid output unit whose label 1 is ``classes_[1]``, with
    J = -(1/n) Σ { y log a2 + (1 - y) log(1 - a2) }; K > 2 classes train K softmax output units with
    J = -(1/n) Σ_i Σ_k Y_ik log A2_ik, Y one-hot in the order of ``classes_``. Each epoch is one step
    θ ← θ - lr ∇J over all n samples (:func:`~torch_shallow.fit`), from θ(0) drawn by ``reset_parameters`` with a
    ``torch.Generator`` seeded from ``random_state``.

    Args:
        hidden_features: d1, the number of hidden units. Default: 4.
        activation: the hidden units' σ: ``"sigmoid"`` (the slides), ``"tanh"`` or ``"relu"``. Default: ``"sigmoid"``.
        lr: α, the step size. Default: 1.0.
        max_epochs: at most this many gradient steps. Default: 2000.
        tol: stop once the training cost changes by less than ``tol`` between two epochs; 0 turns it off.
            Default: 1e-6.
        early_stopping: hold out ``validation_fraction`` of the training data (stratified, split with
            ``random_state``), stop once its cost has not decreased for ``n_iter_no_change`` epochs, and keep θ of
            the epoch of its lowest cost. Any decrease counts: ``tol`` applies to the training cost only, unlike
            in ``MLPClassifier``. Default: False.
        validation_fraction: the share of the training data held out for early stopping, in (0, 1). Default: 0.1.
        n_iter_no_change: epochs without a lower validation cost before early stopping stops. Default: 10.
        random_state: an int, a ``numpy.random.RandomState`` or None. An int seeds the ``torch.Generator`` of
            θ(0) itself, so ``random_state=0`` starts where ``ShallowNet.reset_parameters(Generator().manual_seed(0))``
            does, and seeds the validation split; otherwise a seed is drawn from it (None: NumPy's global state).
            Default: None.
        warm_start: continue from ``model_`` at the next ``fit`` instead of drawing a new θ(0), as scikit-learn's
            ``warm_start``: ``n_iter_`` and ``loss_curve_`` go on from where they were. The classes, the number of
            features, ``hidden_features``, ``activation`` and ``dtype`` must be those of the first fit. Default: False.
        log_dir: a folder for TensorBoard; each ``fit`` writes a new run ``<log_dir>/ShallowClassifier-<timestamp>``,
            so that refits (cross-validation, grid search, warm starts) do not collide. None writes nothing.
        device: where the model trains and predicts, e.g. ``"cpu"`` or ``"cuda"``. Default: ``"cpu"``.
        dtype: ``"float32"`` or ``"float64"``, of the model's parameters and of the training data. Predictions are
            computed in float64 from the trained parameters (see ``decision_function``). Default: ``"float32"``.

    Attributes:
        classes_: (K,) the class labels, sorted; column k of ``predict_proba`` is the probability of ``classes_[k]``.
        n_features_in_: d, the number of features seen in ``fit``.
        feature_names_in_: (d,) the column names, when X was a DataFrame with string column names.
        model_: the trained ``ShallowNet(d, hidden_features, 1 or K, activation, "sigmoid" or "softmax")``, for use
            in torch code.
        n_iter_: the epochs (gradient steps) run, over all warm-started fits.
        loss_curve_: J(θ(t)) on the training data at each epoch t, before its step, over all warm-started fits:
            ``len(loss_curve_) == n_iter_``.
        validation_scores_: with early stopping, the score at each epoch on the held-out part: minus its cost, i.e.
            minus the mean log loss, scikit-learn's ``neg_log_loss`` (higher is better), because that is what early
            stopping watches; ``MLPClassifier``'s are accuracies. None without early stopping.
        best_validation_score_: with early stopping, the highest of this fit's ``validation_scores_``, that of the
            parameters kept in ``model_``; None without early stopping.

    Example::

        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = ShallowClassifier(hidden_features=8, random_state=0).fit(X, y)
        >>> clf.predict_proba(X[:2]).shape
        (2, 3)
    """

    classes_: np.ndarray  # set by fit

    def fit(self, X: Any, y: Any) -> ShallowClassifier:
        """Train on X (n, d), any numeric array-like or DataFrame, and y (n,), labels of any type; returns self.

        Raises:
            ValueError: a parameter out of its range, X or y not as scikit-learn requires (NaN or inf, too few
                samples, continuous targets), y holding one class only, or, with ``warm_start``, data or parameters
                that do not fit ``model_``.
            TypeError: a parameter of the wrong type.
            TrainingDiverged: the cost blew up; try a smaller ``lr``. The estimator keeps its earlier state.

        Warns:
            ConvergenceWarning: training reached ``max_epochs`` without converging (by ``tol``) or stopping early.
        """
        self._check_params()
        warm = self.warm_start and hasattr(self, "model_")
        X, y = validate_data(self, X, y, reset=not warm, dtype=np.dtype(self.dtype))
        check_classification_targets(y)
        classes, y = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y holds one class only, {classes.tolist()[0]!r}: a classifier needs at least 2 classes")
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(
                f"warm_start=True continues model_, fitted on the classes {self.classes_.tolist()}; "
                f"this y has {classes.tolist()}. Set warm_start=False to start afresh."
            )
        seed = _seed(self.random_state)
        model = self._warm_model() if warm else self._new_model(X.shape[1], len(classes), seed)
        history = self._train(model, X, y, seed, warm, stratify=True)
        self.classes_ = classes
        self._warn_unless_converged(history)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits Z2 of X (n, d), in float64: shape (n,) for two classes, positive where ``classes_[1]`` is
        predicted; (n, K) for K > 2, largest at the predicted class."""
        Z2 = self._logits(X)
        return Z2[:, 0] if self.model_.output == "sigmoid" else Z2

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, K) probabilities of the classes in the order of ``classes_``, rows summing to 1 (float64)."""
        Z2 = torch.from_numpy(self._logits(X))
        if self.model_.output == "sigmoid":
            return torch.cat([probabilities(-Z2), probabilities(Z2)], dim=1).numpy()  # 1 - σ(z) = σ(-z)
        return probabilities(Z2, "softmax").numpy()

    def predict(self, X: Any) -> np.ndarray:
        """(n,) the predicted class labels, from ``classes_``: where the logit is > 0, or the largest logit."""
        Z2 = self._logits(X)
        index = (Z2[:, 0] > 0).astype(np.intp) if self.model_.output == "sigmoid" else Z2.argmax(axis=1)
        labels: np.ndarray = self.classes_[index]
        return labels

    def _new_model(self, in_features: int, n_classes: int, seed: int) -> ShallowNet:
        """A ShallowNet with θ(0) drawn from ``seed``: one sigmoid output unit for two classes, K softmax ones else."""
        binary = n_classes == 2
        model = ShallowNet(
            in_features,
            self.hidden_features,
            1 if binary else n_classes,
            self.activation,
            "sigmoid" if binary else "softmax",
            device=self.device,
            dtype=DTYPES[self.dtype],
        )
        model.reset_parameters(torch.Generator().manual_seed(seed))
        return model


def _seed(random_state: int | np.random.RandomState | None) -> int:
    """The seed of θ(0) and of the validation split: an int ``random_state`` itself, else one drawn from it."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _tensor(X: np.ndarray, like: Tensor) -> Tensor:
    """X (n, d) as a tensor of the dtype and device of ``like``. A copy: X may be a read-only array or memory map."""
    return torch.tensor(X, dtype=like.dtype, device=like.device)


def _targets(y: np.ndarray, model: ShallowNet) -> Tensor:
    """The class indices y (n,) as the model's Y: (n, 1) 0/1 labels for a sigmoid output, (n, K) one-hot rows for
    softmax; a regressor's targets, (n,) or (n, d2), as (n, d2)."""
    if model.output == "identity":
        return torch.tensor(y, dtype=model.W1.dtype, device=model.W1.device).reshape(len(y), -1)
    index = torch.as_tensor(y, device=model.W1.device)
    if model.output == "sigmoid":
        return index[:, None].to(model.W1.dtype)
    return one_hot(index, model.out_features, dtype=model.W1.dtype)


class ShallowRegressor(RegressorMixin, _ShallowEstimator):
    """A :class:`~torch_shallow.ShallowNet` with identity outputs trained by full-batch gradient descent, as a
    scikit-learn regressor.

    d2 identity output units, one per target column (one for a 1-D y), with half the mean squared error
    J = (1/2n) Σ_i Σ_k (Z2 - Y)²_ik, whose dZ2 = n⁻¹(A2 - Y) is the slides' (docs/outputs.md); the network and its
    gradient are ``MLPRegressor``'s with one hidden layer. Each epoch is one step θ ← θ - lr ∇J over all n samples
    (:func:`~torch_shallow.fit`), from θ(0) drawn by ``reset_parameters`` with a ``torch.Generator`` seeded from
    ``random_state``. ``score`` is R² (scikit-learn's ``r2_score``).

    Args:
        lr: α, the step size. Default: 0.1.
        hidden_features, activation, max_epochs, tol, n_iter_no_change, random_state, log_dir, device, dtype:
            as for :class:`ShallowClassifier`: an int ``random_state`` starts where
            ``ShallowNet(d, hidden_features, d2, activation, "identity").reset_parameters(Generator().manual_seed(
            random_state))`` does.
        early_stopping, validation_fraction: as for :class:`ShallowClassifier`, the held-out part drawn at random
            (not stratified).
        warm_start: as for :class:`ShallowClassifier`; the number of targets must be that of the first fit.

    Attributes:
        n_features_in_, feature_names_in_, model_, n_iter_, loss_curve_: as for :class:`ShallowClassifier`;
            ``model_`` is ``ShallowNet(d, hidden_features, d2, activation, "identity")``.
        n_outputs_: d2, the number of targets.
        validation_scores_, best_validation_score_: with early stopping, minus the cost on the held-out part (minus
            half its mean squared error), what early stopping watches; ``MLPRegressor``'s are R². None without it.

    Example::

        >>> import numpy as np
        >>> X = np.linspace(-1, 1, 50)[:, None]
        >>> reg = ShallowRegressor(hidden_features=16, activation="tanh", lr=0.5, random_state=0).fit(X, X[:, 0] ** 2)
        >>> reg.predict(X[:3]).shape
        (3,)
    """

    n_outputs_: int  # set by fit

    def __init__(
        self,
        hidden_features: int = 4,
        activation: str = "sigmoid",
        lr: float = 0.1,
        max_epochs: int = 2000,
        tol: float = 1e-6,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        random_state: int | np.random.RandomState | None = None,
        warm_start: bool = False,
        log_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
    ) -> None:
        # The classifier's parameters with a smaller step: the squared error of targets of unit variance is sharper
        # than the cross-entropy, and lr = 1 is beyond 2/sharpness on some of scikit-learn's checks' data.
        super().__init__(
            hidden_features,
            activation,
            lr,
            max_epochs,
            tol,
            early_stopping,
            validation_fraction,
            n_iter_no_change,
            random_state,
            warm_start,
            log_dir,
            device,
            dtype,
        )

    def fit(self, X: Any, y: Any) -> ShallowRegressor:
        """Train on X (n, d), any numeric array-like or DataFrame, and y (n,) or (n, d2), real targets; returns self.

        Raises:
            ValueError: a parameter out of its range, X or y not as scikit-learn requires (NaN or inf, too few
                samples, non-numeric targets), or, with ``warm_start``, data or parameters that do not fit ``model_``.
            TypeError: a parameter of the wrong type.
            TrainingDiverged: the cost blew up; try a smaller ``lr``. The estimator keeps its earlier state.

        Warns:
            ConvergenceWarning: training reached ``max_epochs`` without converging (by ``tol``) or stopping early.
        """
        self._check_params()
        warm = self.warm_start and hasattr(self, "model_")
        X, y = validate_data(self, X, y, reset=not warm, dtype=np.dtype(self.dtype), multi_output=True, y_numeric=True)
        outputs = 1 if y.ndim == 1 else y.shape[1]
        if warm and outputs != self.n_outputs_:
            raise ValueError(
                f"warm_start=True continues model_, fitted on {self.n_outputs_} targets; this y has {outputs}. "
                "Set warm_start=False to start afresh."
            )
        seed = _seed(self.random_state)
        if warm:
            model = self._warm_model()
        else:
            model = ShallowNet(
                X.shape[1],
                self.hidden_features,
                outputs,
                self.activation,
                "identity",
                device=self.device,
                dtype=DTYPES[self.dtype],
            )
            model.reset_parameters(torch.Generator().manual_seed(seed))
        history = self._train(model, X, y, seed, warm, stratify=False)
        self.n_outputs_ = outputs
        self._warn_unless_converged(history)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predictions Z2 of X (n, d), in float64: (n,) for one target, as ``MLPRegressor``; (n, d2) else."""
        Z2 = self._logits(X)
        return Z2[:, 0] if self.n_outputs_ == 1 else Z2

    def __sklearn_tags__(self) -> Any:  # scikit-learn's Tags
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
