"""scikit-learn adapters: :class:`NeuralNetClassifier` and :class:`NeuralNetRegressor`.

These are the one place in funcnn where classes are allowed (API.md §7): thin adapters at
the boundary, so that a funcnn network can sit in a ``Pipeline``, be tuned by
``GridSearchCV`` and scored by ``cross_val_score``. ``fit`` validates with scikit-learn's
helpers, builds a spec with :func:`funcnn.layers.mlp` and calls :func:`funcnn.train`;
everything it learns is plain data::

    clf = NeuralNetClassifier(hidden=(64,), epochs=50, seed=0).fit(X, y)
    clf.spec_, clf.params_          # a spec (list of dicts) and a params dict of arrays
    F.predict(clf.spec_, clf.params_, X, loss=clf.loss_)   # == clf.predict(X) encoded
    F.save("model.npz", clf.spec_, clf.params_, classes=clf.classes_)

Nothing else in funcnn imports this module.

``partial_fit`` trains one epoch per call and keeps the whole training state (params,
optimizer state, the shuffling stream's state, the epoch count, the history) in the
plain-data attribute ``run_`` (see :func:`funcnn.train.new_run`): ``k`` calls give
bit for bit what ``fit`` gives with ``epochs=k`` and the same ``seed``.
"""
from __future__ import annotations

import copy
import numbers
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .layers import check_spec, mlp
from .network import check_params, init_params
from . import network as _network
from .optimizers import by_name
from .train import DivergenceWarning, divergence_floor, diverged, new_run, train, train_epoch
from .validation import check_dtype, check_sample_weight

__all__ = ["NeuralNetClassifier", "NeuralNetRegressor", "expected_failed_checks"]

#: ``early_stopping=True``: the fraction of the training data held out for validation,
#: and the patience (epochs without improvement of the validation loss).
VALIDATION_FRACTION = 0.1
PATIENCE = 10

#: ``seed=None``: the seed of ``funcnn.train``'s default. Deterministic on purpose: funcnn keeps
#: no global random state, and scikit-learn's ``set_random_state`` (which its estimator checks
#: use before comparing two fits) only knows a parameter named ``random_state``.
DEFAULT_SEED = 0
_SEED_BOUND = 2 ** 31 - 1  # seeds drawn from a RandomState / a Generator


def expected_failed_checks(estimator: Any) -> Dict[str, str]:
    """The scikit-learn estimator checks that ``estimator`` is expected to fail, with why.

    Pass it to ``check_estimator`` / ``parametrize_with_checks``. With the default
    ``dtype="float64"`` (scikit-learn's own precision) there are none. With float32 params:

    * ``check_sample_weight_equivalence_on_dense_data`` compares a fit with integer
      ``sample_weight`` to a fit on repeated rows at ``rtol=1e-7``. The two are the same
      arithmetic only up to rounding (``sum(w * l) / sum(w)`` against a sum over repeated
      rows), and float32 rounding (about 6e-8 relative per operation), carried through an
      optimizer's steps, ends 1e-7 to 1e-6 apart. In float64 it passes.
    * ``check_regressor_multioutput`` (regressor) requires float64 predictions;
      predictions come in the params' dtype, as ``funcnn.predict`` gives them.
    """
    if check_dtype(getattr(estimator, "dtype", "float64")) != np.float32:
        return {}
    failed = {"check_sample_weight_equivalence_on_dense_data": (
        "float32 params: integer sample weights and repeated rows are the same computation only up to "
        "float32 rounding, which training carries past the check's rtol=1e-7 (passes with dtype=float64)")}
    if isinstance(estimator, RegressorMixin):
        failed["check_regressor_multioutput"] = (
            "float32 params: predictions are float32, as funcnn.predict returns them; the check requires "
            "float64 (passes with dtype=float64)")
    return failed


class _NeuralNet(BaseEstimator):
    """What the classifier and the regressor share: parameters, seeding, spec, training."""

    def __init__(self, hidden=(100,), activation="relu", dropout=0.0, optimizer="adam", lr=1e-3, epochs=200,
                 batch_size=32, l2=1e-4, early_stopping=False, seed=None, verbose=False, spec=None,
                 dtype="float64"):
        self.hidden = hidden
        self.activation = activation
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.l2 = l2
        self.early_stopping = early_stopping
        self.seed = seed
        self.verbose = verbose
        self.spec = spec
        self.dtype = dtype

    # --- what the subclasses define ---------------------------------------------------
    #
    # _validate(X, y, reset) -> (X, y), _targets(y, fit, classes) -> (y for funcnn, n_outputs) and
    # _loss() -> the loss name; _stratify and _check_weighted only where they apply.

    def _loss(self) -> str:
        raise NotImplementedError

    def _stratify(self, y: np.ndarray) -> Optional[np.ndarray]:
        return None

    def _check_weighted(self, y: np.ndarray, w: Optional[np.ndarray]) -> None:
        pass

    # --- shared -----------------------------------------------------------------------

    def _draw_seed(self) -> int:
        """The int seed of this fit: ``seed`` itself, or one drawn from it (see ``seed``)."""
        seed = self.seed
        if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
            if seed < 0:
                raise ValueError(f"seed must be a non-negative int, got {seed}")
            return int(seed)
        if seed is None:
            return DEFAULT_SEED
        if isinstance(seed, np.random.RandomState):
            return int(seed.randint(_SEED_BOUND))
        if isinstance(seed, np.random.Generator):
            return int(seed.integers(_SEED_BOUND))
        raise TypeError(f"seed must be None, an int, a np.random.RandomState or a np.random.Generator, "
                        f"got {seed!r}")

    def _build(self, n_features: int, n_outputs: int, seed: int) -> Tuple[list, dict]:
        """The spec (from ``hidden``/``activation``/``dropout``, or a copy of ``spec``) and its fresh params."""
        if self.spec is None:
            spec = mlp(self.hidden, self.activation, self.dropout, n_outputs)
        else:
            check_spec(self.spec)
            spec = copy.deepcopy(list(self.spec))
        params = init_params(spec, n_features, seed=seed, dtype=check_dtype(self.dtype))
        n_out = check_params(spec, params, n_features)[1]
        if n_out != n_outputs:
            raise ValueError(f"spec has {n_out} output(s) but this problem needs {n_outputs} "
                             f"(its last dense layer must have {n_outputs} units)")
        return spec, params

    def _optimizer(self) -> Dict[str, Any]:
        return by_name(self.optimizer, lr=self.lr)

    def _early_stopping(self) -> Any:
        """What ``train`` gets as ``early_stopping``: None, or a patience / dict."""
        es = self.early_stopping
        if es is None or es is False:
            return None
        return PATIENCE if es is True else es

    def _dtype_for_X(self) -> np.dtype:
        if hasattr(self, "params_"):
            return check_params(self.spec_, self.params_)[2]
        return check_dtype(self.dtype)

    def fit(self, X, y, sample_weight=None):
        """Train a new network on (X, y) for ``epochs`` epochs with :func:`funcnn.train`.

        Args:
            X: features ``(n_samples, n_features)``.
            y: labels (classifier: any label type) or targets ``(n,)`` / ``(n, k)`` (regressor).
            sample_weight: optional weights ``(n,)``; each minibatch's loss is ``Σ w·l / Σ w``.

        Returns:
            self, fitted: ``spec_``, ``params_``, ``history_`` and the rest hold the network.
        """
        X, y = self._validate(X, y, reset=True)
        y, n_outputs = self._targets(y, fit=True)
        w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        self._check_weighted(y, w)
        seed = self._draw_seed()
        spec, params = self._build(X.shape[1], n_outputs, seed)
        early_stopping = self._early_stopping()
        validation_data = None
        if early_stopping is not None:
            arrays = (X, y) if w is None else (X, y, w)
            parts = train_test_split(*arrays, test_size=VALIDATION_FRACTION, random_state=seed % 2 ** 32,
                                     stratify=self._stratify(y))
            X, X_val, y, y_val = parts[:4]
            w = None if w is None else parts[4]
            validation_data = (X_val, y_val)
        self.run_ = None
        if early_stopping is None:
            # train() is new_run + `epochs` x train_epoch (bit for bit); running those here keeps
            # the whole training state, so a later partial_fit continues Adam's state exactly.
            run = new_run(spec, params, self._optimizer(), seed=seed)
            for epoch in range(self.epochs):
                run = train_epoch(spec, run, X, y, loss=self._loss(), optimizer=self._optimizer(),
                                  batch_size=self.batch_size, l2=self.l2, sample_weight=w)
                if self.verbose:
                    print(f"epoch {epoch + 1}/{self.epochs}  loss {run['history']['loss'][-1]:.4f}")
            if diverged(run["history"].get("loss", []), run["initial_loss"],
                        divergence_floor(self._loss(), n_outputs)):
                warnings.warn(f"training diverged: the loss went from {run['initial_loss']:.4g} to "
                              f"{run['history']['loss'][-1]:.4g}; try a smaller lr", DivergenceWarning)
            params, history, self.run_ = run["params"], run["history"], run
        else:
            params, history = train(spec, params, X, y, loss=self._loss(), optimizer=self._optimizer(),
                                    epochs=self.epochs, batch_size=self.batch_size, l2=self.l2,
                                    validation_data=validation_data, seed=seed, sample_weight=w,
                                    early_stopping=early_stopping, progress=bool(self.verbose))
        self.spec_, self.params_, self.history_ = spec, params, history
        self.loss_, self.seed_ = self._loss(), seed
        return self

    def _partial_fit(self, X, y, classes, sample_weight):
        first = not hasattr(self, "params_")
        X, y = self._validate(X, y, reset=first)
        y, n_outputs = self._targets(y, fit=first, classes=classes)
        w = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        optimizer = self._optimizer()
        if first:
            seed = self._draw_seed()
            spec, params = self._build(X.shape[1], n_outputs, seed)
            self.spec_, self.loss_, self.seed_ = spec, self._loss(), seed
            self.run_ = new_run(spec, params, optimizer, seed=seed)
        elif self.run_ is None:  # fitted by fit() with early stopping: start a run from its params
            self.run_ = new_run(self.spec_, self.params_, optimizer, seed=self.seed_)
        self.run_ = train_epoch(self.spec_, self.run_, X, y, loss=self.loss_, optimizer=optimizer,
                                batch_size=self.batch_size, l2=self.l2, sample_weight=w)
        self.params_, self.history_ = self.run_["params"], self.run_["history"]
        return self

    def _output_X(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=self._dtype_for_X())


class NeuralNetClassifier(ClassifierMixin, _NeuralNet):
    """A funcnn MLP classifier for scikit-learn.

    Any label type (ints, strings, bools); ``classes_`` is sorted. Two classes train a
    network with one output (a logit) and ``binary_cross_entropy``, more classes one
    output per class and ``softmax_cross_entropy``; ``loss_`` names it, so
    ``classes_[funcnn.predict(spec_, params_, X, loss=loss_)]`` is ``predict(X)``.

    Args:
        hidden: a width, or the widths of the hidden layers.
        activation: a layer type name or dict (see :func:`funcnn.layers.mlp`).
        dropout: the rate after each hidden activation.
        optimizer: ``"adam"``, ``"sgd"``, ``"rmsprop"`` or an optimizer dict.
        lr: the learning rate.
        epochs: epochs of ``fit``.
        batch_size: minibatch size; None is full batch.
        l2: the L2 coefficient (``l2/2 · Σ‖W‖²`` added to the mean loss).
        early_stopping: True holds out 10 % (stratified), stops after 10 epochs without a
            better validation loss and restores the best params; or an int patience or a
            dict as :func:`funcnn.train` takes.
        seed: an int gives the same bits as ``funcnn.init_params(seed=seed)`` +
            ``funcnn.train(seed=seed)``; None is ``funcnn.train``'s default seed, 0, so fits
            are reproducible; a ``RandomState`` or ``Generator`` gives a seed drawn from
            itself (``np.random.default_rng()``: a fresh one).
        verbose: ``train``'s progress output.
        spec: a whole network instead of ``hidden``/``activation``/``dropout``; its last
            dense layer must have as many units as the problem needs.
        dtype: of the params: float64, as scikit-learn computes, or float32.

    Attributes:
        spec_: the network's layer specs (a list of dicts).
        params_: the trained params (a dict of arrays).
        history_: ``train``'s per-epoch history.
        loss_: the loss name.
        classes_: the sorted classes; ``predict_proba``'s columns follow them.
        n_features_in_: the number of features seen by ``fit``.
        seed_: the int seed used.
        run_: the training state of ``partial_fit`` (None after ``fit`` with early stopping).

    Examples:
        >>> import funcnn as F
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = NeuralNetClassifier(hidden=(16,), epochs=5, seed=0).fit(X, y)
        >>> clf.spec_
        [{'type': 'dense', 'units': 16}, {'type': 'relu'}, {'type': 'dense', 'units': 3}]
        >>> bool((clf.classes_[F.predict(clf.spec_, clf.params_, X, loss=clf.loss_)] == clf.predict(X)).all())
        True
    """

    def _validate(self, X, y, reset):
        return validate_data(self, X, y, reset=reset, dtype=check_dtype(self.dtype) if reset else
                             self._dtype_for_X())

    def _loss(self) -> str:
        return "binary_cross_entropy" if len(self.classes_) == 2 else "softmax_cross_entropy"

    def _targets(self, y, fit, classes=None):
        check_classification_targets(y)
        if fit:
            encoder = LabelEncoder().fit(y if classes is None else classes)
            if len(encoder.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes, got 1 class "
                                 f"({encoder.classes_[0]!r})")
            self.classes_ = encoder.classes_
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={classes!r} differs from the classes of the first call, "
                                 f"{self.classes_!r}")
            encoder = LabelEncoder().fit(self.classes_)
        y = encoder.transform(y)
        return y, 1 if len(self.classes_) == 2 else len(self.classes_)

    def _stratify(self, y):
        return y

    def _check_weighted(self, y, w):
        if w is not None and np.unique(y[w > 0]).size < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes with positive "
                             "sample_weight, got 1 class")

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch on (X, y), continuing the optimizer state and the shuffling stream.

        ``classes`` (all labels there will be) is required on the first call, as in
        scikit-learn. ``early_stopping`` and ``epochs`` do not apply. After ``fit`` it continues
        fit's run exactly (with early stopping, which ends on the best epoch's params, it starts
        a new run from the fitted params).
        """
        if not hasattr(self, "params_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._partial_fit(X, y, classes, sample_weight)

    def predict(self, X):
        """The predicted labels (from ``classes_``)."""
        X = self._output_X(X)
        return self.classes_[_network.predict(self.spec_, self.params_, X, loss=self.loss_)]

    def predict_proba(self, X):
        """Class probabilities, one column per entry of ``classes_``, in that order."""
        X = self._output_X(X)
        return _network.predict_proba(self.spec_, self.params_, X, loss=self.loss_)

    def __sklearn_tags__(self):
        return super().__sklearn_tags__()


class NeuralNetRegressor(RegressorMixin, _NeuralNet):
    """A funcnn MLP regressor for scikit-learn (``mean_squared_error``).

    A 1-D ``y`` trains one output and ``predict`` returns a 1-D array; a 2-D ``y`` of
    shape (n, k) trains k outputs and ``predict`` returns (n, k). Parameters and fitted
    attributes as :class:`NeuralNetClassifier` (no ``classes_``; ``n_outputs_`` instead).

    Examples:
        >>> from sklearn.datasets import load_diabetes
        >>> X, y = load_diabetes(return_X_y=True)
        >>> reg = NeuralNetRegressor(hidden=(8,), epochs=3, seed=0).fit(X, y)
        >>> reg.predict(X[:2]).shape, reg.loss_
        ((2,), 'mean_squared_error')
    """

    def _validate(self, X, y, reset):
        dtype = check_dtype(self.dtype) if reset else self._dtype_for_X()
        return validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True, y_numeric=True)

    def _loss(self) -> str:
        return "mean_squared_error"

    def _targets(self, y, fit, classes=None):
        if classes is not None:
            raise TypeError("classes applies to classifiers only")
        y = np.asarray(y)
        if fit:
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
            self._y_ndim = y.ndim
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(f"y has {1 if y.ndim == 1 else y.shape[1]} output(s) but the first call "
                             f"had {self.n_outputs_}")
        return y, self.n_outputs_

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on (X, y), continuing the optimizer state and the shuffling stream.

        ``early_stopping`` and ``epochs`` do not apply. After ``fit`` it continues fit's run
        exactly (after a fit with early stopping, it starts a new run from the fitted params).
        """
        return self._partial_fit(X, y, None, sample_weight)

    def predict(self, X):
        """The predictions: (n,) for a 1-D training ``y``, else (n, k)."""
        X = self._output_X(X)
        out = _network.predict(self.spec_, self.params_, X, loss=self.loss_)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
