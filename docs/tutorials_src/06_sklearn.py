"""
# scikit-learn: Pipeline and GridSearchCV

`funcnn.estimators` holds the one kind of class funcnn allows: thin scikit-learn adapters,
`NeuralNetClassifier` and `NeuralNetRegressor`. `fit` builds an MLP spec, calls
`init_params` and `train`, and keeps what it learned as plain data (`spec_`, `params_`,
`classes_`, `history_`), so the estimator goes into a `Pipeline`, a `GridSearchCV` or
`cross_val_score` — and the trained network comes out again as a spec and a params dict.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import funcnn as F
from funcnn.estimators import NeuralNetClassifier, NeuralNetRegressor

# %%
# ## A pipeline, tuned by cross-validation
#
# The breast-cancer data: 569 tumours, 30 features, two classes. The scaler is fitted
# inside each fold, as it must be.

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)

pipe = make_pipeline(StandardScaler(), NeuralNetClassifier(epochs=30, seed=0))
search = GridSearchCV(pipe, {"neuralnetclassifier__hidden": [(16,), (64,)],
                             "neuralnetclassifier__l2": [1e-4, 1e-2]}, cv=3)
search.fit(X_train, y_train)
print(search.best_params_)
print(f"test accuracy {search.score(X_test, y_test):.3f}")

# %%
# ## The network inside is plain data
#
# Two classes train one output with `binary_cross_entropy`; `classes_` maps its
# decisions back to the original labels. `funcnn.predict` on the fitted `spec_` and
# `params_` gives exactly the pipeline's predictions.

scaler, clf = search.best_estimator_
print(clf.spec_)
print(clf.loss_, clf.classes_)
labels = clf.classes_[F.predict(clf.spec_, clf.params_, scaler.transform(X_test), loss=clf.loss_)]
print((labels == search.predict(X_test)).all())

# %%
# The fit's history is there too:

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(clf.history_["loss"], label="training loss")
ax.set_xlabel("epoch")
ax.set_ylabel("binary cross-entropy + L2")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# ## Any labels, reproducible fits
#
# Labels may be strings; `seed` fixes the initialisation and the minibatch order, so two
# fits give the same bits. (`seed=None` means funcnn's default seed 0: funcnn keeps no
# global random state. Pass `seed=np.random.default_rng()` for a fresh draw.)

names = np.array(["malignant", "benign"])[y_train]
a = NeuralNetClassifier(hidden=(16,), epochs=10, seed=3).fit(X_train, names)
b = NeuralNetClassifier(hidden=(16,), epochs=10, seed=3).fit(X_train, names)
print(a.classes_, all(np.array_equal(a.params_[k], b.params_[k]) for k in a.params_))

# %%
# `cross_val_score` works as for any scikit-learn model, and so does the regressor:

from sklearn.datasets import load_diabetes  # noqa: E402

Xd, yd = load_diabetes(return_X_y=True)
reg = make_pipeline(StandardScaler(), NeuralNetRegressor(hidden=(32,), epochs=100, lr=1e-2, seed=0))
print("R² per fold:", cross_val_score(reg, Xd, yd, cv=3).round(3))

# %%
# ## `partial_fit`
#
# `partial_fit` trains one epoch per call and keeps the whole training state (params,
# optimizer state, shuffling stream) in `run_`; k calls give bit for bit the fit with
# `epochs=k`.

Xs = StandardScaler().fit_transform(X_train)
step = NeuralNetClassifier(hidden=(16,), seed=0)
for _ in range(5):
    step.partial_fit(Xs, y_train, classes=[0, 1])
full = NeuralNetClassifier(hidden=(16,), epochs=5, seed=0).fit(Xs, y_train)
print(all(np.array_equal(step.params_[k], full.params_[k]) for k in full.params_))
