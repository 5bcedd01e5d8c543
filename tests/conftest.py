"""Shared test helpers: read-only copies, small data sets, spec tables."""
import numpy as np
import pytest


def frozen(obj):
    """A deep copy of ``obj`` with every ndarray read-only (flags.writeable = False)."""
    if isinstance(obj, np.ndarray):
        a = obj.copy()
        a.flags.writeable = False
        return a
    if isinstance(obj, dict):
        return {k: frozen(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [frozen(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(frozen(v) for v in obj)
    return obj


def assert_tree_equal(a, b):
    """Bit-identical nested dicts/lists of arrays and scalars."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (list(a), list(b) if isinstance(b, dict) else b)
        for k in a:
            assert_tree_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_tree_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-identical, NaNs included
    else:
        assert a == b or (a != a and b != b), (a, b)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def optimizer_cases():
    """Optimizers that exercise every branch of every rule (momentum, nesterov, schedules, weight decay)."""
    from funcnn import optimizers as O
    from funcnn import schedules as S
    return [O.sgd(0.1), O.sgd(0.05, momentum=0.9), O.sgd(0.05, momentum=0.8, nesterov=True), O.rmsprop(1e-2),
            O.rmsprop(S.exponential(0.1, 0.7), decay=0.5, eps=1e-3), O.adam(1e-2),
            O.adam(S.warmup(S.cosine(0.1, 4), 2), beta1=0.5, beta2=0.8, eps=1e-2, weight_decay=0.1)]
