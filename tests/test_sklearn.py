"""ShallowClassifier against scikit-learn's own estimator checks, torch's cross-entropy and its documented
behaviour; the digits experiment meets its goal."""

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris, make_blobs, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from torch_shallow import ShallowNet, TrainingDiverged
from torch_shallow.labels import stratified_split
from torch_shallow.sklearn import ShallowClassifier, ShallowRegressor

# Most fits here stop at a small epoch budget on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
# Costs computed here in float64 and by the trainer in float32 agree to about float32's rounding.
FLOAT32 = {"rtol": 1e-5, "atol": 1e-6}


def blobs(classes: int, n: int = 120, seed: int = 0):
    """Standardised, well separated blobs: X (n, 4), y (n,) integer labels 0..classes-1."""
    X, y = make_blobs(n_samples=n, centers=classes, n_features=4, random_state=seed)
    return StandardScaler().fit_transform(X), y


def noisy(seed: int = 0):
    """A problem a 16-unit network overfits within a few thousand epochs, so that early stopping stops it."""
    X, y = make_classification(n_samples=200, n_features=20, n_informative=3, flip_y=0.2, random_state=seed)
    return StandardScaler().fit_transform(X), y


@parametrize_with_checks([ShallowClassifier(), ShallowRegressor()])
def test_scikit_learn_estimator_checks(estimator, check):
    """Every check of scikit-learn's, on the estimator as users get it (default parameters), none expected to
    fail. scikit-learn skips one, check_array_api_input, unless SCIPY_ARRAY_API=1 was set before SciPy was
    imported: the next test runs it so."""
    check(estimator)


def test_scikit_learn_array_api_check_with_scipy_array_api_set():
    code = (
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from torch_shallow.sklearn import ShallowClassifier, ShallowRegressor\n"
        "for estimator in (ShallowClassifier(), ShallowRegressor()):\n"
        "    check_array_api_input(type(estimator).__name__, estimator, array_namespace='numpy', "
        "expect_only_array_outputs=False)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SCIPY_ARRAY_API": "1"},
    )
    assert result.returncode == 0, result.stderr


def test_importing_torch_shallow_does_not_import_scikit_learn():
    code = "import torch_shallow, sys; assert 'sklearn' not in sys.modules, 'sklearn was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_string_labels_come_back_as_given():
    X, y = blobs(3)
    names = np.array(["virginica", "setosa", "versicolor"])[y]
    clf = ShallowClassifier(hidden_features=8, max_epochs=500, random_state=0).fit(X, names)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert clf.predict(X).dtype == names.dtype
    assert clf.score(X, names) > 0.95


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    X, y = blobs(2)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = ShallowClassifier(max_epochs=200, random_state=0).fit(frame, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert clf.n_features_in_ == 4
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"a": "z"}))


@pytest.mark.parametrize("classes", [2, 3])
def test_predict_proba_columns_follow_classes(classes):
    """Rows sum to 1, and column k is the probability of classes_[k]: labels given out of order, and the argmax
    mapped through classes_ is the prediction and fits the data."""
    X, y = blobs(classes)
    labels = np.array([30, 10, 20][:classes])[y]
    clf = ShallowClassifier(hidden_features=8, max_epochs=500, random_state=0).fit(X, labels)
    P = clf.predict_proba(X)
    assert P.shape == (len(X), classes)
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X))
    assert np.mean(clf.classes_[P.argmax(axis=1)] == labels) > 0.95


def test_binary_decision_function_is_the_logit():
    X, y = blobs(2)
    clf = ShallowClassifier(max_epochs=300, random_state=0).fit(X, np.where(y == 1, "yes", "no"))
    z = clf.decision_function(X)
    assert z.shape == (len(X),)
    np.testing.assert_array_equal(clf.classes_[(z > 0).astype(int)], clf.predict(X))
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    with torch.no_grad():
        Z2 = clf.model_(torch.as_tensor(X, dtype=torch.float32))  # the model's own float32 forward pass
    np.testing.assert_allclose(z, Z2[:, 0].numpy(), **FLOAT32)


def test_more_than_two_classes_train_softmax_with_torch_cross_entropy_as_the_cost():
    """A 3-class fit trains K = 3 softmax units, and its costs are torch's cross-entropy: of θ(0), the draw that
    random_state seeds (as documented), and of the parameters after k steps, the (k+1)-th cost of a longer run."""
    X, y = blobs(3)
    clf = ShallowClassifier(hidden_features=5, max_epochs=10, tol=0, random_state=3, dtype="float64").fit(X, y)
    assert clf.model_.output == "softmax" and clf.model_.out_features == 3
    X64, target = torch.as_tensor(X), torch.as_tensor(y)
    initial = ShallowNet(4, 5, 3, output="softmax", dtype=torch.float64)
    initial.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():
        J0 = torch.nn.functional.cross_entropy(initial(X64), target).item()
        J10 = torch.nn.functional.cross_entropy(clf.model_(X64), target).item()
    longer = ShallowClassifier(hidden_features=5, max_epochs=11, tol=0, random_state=3, dtype="float64").fit(X, y)
    assert clf.loss_curve_[0] == pytest.approx(J0, rel=1e-12)
    assert longer.loss_curve_[10] == pytest.approx(J10, rel=1e-12)


def test_two_classes_train_one_sigmoid_unit():
    X, y = blobs(2)
    clf = ShallowClassifier(max_epochs=5).fit(X, y)
    assert clf.model_.output == "sigmoid" and clf.model_.out_features == 1


def test_random_state_makes_fits_repeatable():
    X, y = noisy()
    fits = [ShallowClassifier(max_epochs=100, random_state=s).fit(X, y) for s in (7, 7, 8)]
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    assert fits[0].loss_curve_[0] != fits[2].loss_curve_[0]
    seeded = [ShallowClassifier(max_epochs=20, random_state=np.random.RandomState(5)).fit(X, y) for _ in range(2)]
    assert seeded[0].loss_curve_ == seeded[1].loss_curve_


def test_early_stopping_split_is_repeatable():
    X, y = noisy()
    fits = [
        ShallowClassifier(hidden_features=16, early_stopping=True, max_epochs=300, random_state=s).fit(X, y)
        for s in (1, 1, 2)
    ]
    assert fits[0].validation_scores_ == fits[1].validation_scores_
    assert fits[0].validation_scores_ != fits[2].validation_scores_


def test_pickle_round_trip_predicts_the_same():
    X, y = blobs(3)
    clf = ShallowClassifier(max_epochs=200, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(copy.predict(X), clf.predict(X))
    assert copy.loss_curve_ == clf.loss_curve_


def test_warm_start_continues_where_the_last_fit_ended():
    """Two warm-started fits of 40 epochs are one fit of 80: the same costs and parameters, bit for bit, for plain
    gradient descent keeps no state between steps."""
    X, y = blobs(3)
    once = ShallowClassifier(max_epochs=80, tol=0, random_state=0).fit(X, y)
    twice = ShallowClassifier(max_epochs=40, tol=0, random_state=0, warm_start=True).fit(X, y)
    first = twice.model_
    twice.fit(X, y)
    assert twice.n_iter_ == 80 and len(twice.loss_curve_) == 80
    assert twice.loss_curve_ == once.loss_curve_
    for name, p in once.model_.named_parameters():
        torch.testing.assert_close(getattr(twice.model_, name), p, rtol=0, atol=0)
    assert twice.model_ is not first  # the first fit's model is left as it was
    twice.set_params(warm_start=False).fit(X, y)
    assert twice.n_iter_ == 40


def test_warm_start_with_early_stopping_goes_on_from_the_best_epoch():
    """The second fit starts from the parameters of the first one's best epoch, on the same validation split (the
    same random_state), so its first validation score is the first fit's best."""
    X, y = noisy()
    clf = ShallowClassifier(
        hidden_features=16,
        max_epochs=20_000,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=50,
        random_state=0,
        warm_start=True,
    ).fit(X, y)
    first, best, n_iter = list(clf.validation_scores_), clf.best_validation_score_, clf.n_iter_
    clf.fit(X, y)
    assert clf.validation_scores_[:n_iter] == first and len(clf.validation_scores_) == clf.n_iter_ > n_iter
    assert clf.validation_scores_[n_iter] == best


def test_a_diverging_fit_leaves_the_fitted_estimator_as_it_was():
    X, y = noisy()
    clf = ShallowClassifier(max_epochs=20, random_state=0, warm_start=True).fit(X, y)
    state, n_iter = {k: v.clone() for k, v in clf.model_.state_dict().items()}, clf.n_iter_
    with pytest.raises(TrainingDiverged, match="try a smaller learning rate"):
        clf.set_params(lr=1e6).fit(X, y)
    assert clf.n_iter_ == n_iter and len(clf.loss_curve_) == n_iter
    for name, value in clf.model_.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)


@pytest.mark.parametrize(
    "change, message",
    [
        ("classes", r"classes \[0, 1, 2\]"),
        ("features", "features"),
        ("hidden_features", "hidden_features is 4, not 6"),
        ("dtype", "dtype is 'float32', not 'float64'"),
    ],
)
def test_warm_start_refuses_what_does_not_fit_model_(change, message):
    X, y = blobs(3)
    clf = ShallowClassifier(max_epochs=5, warm_start=True).fit(X, y)
    n_iter = clf.n_iter_
    data = {"classes": (X, np.minimum(y, 1)), "features": (X[:, :3], y)}.get(change, (X, y))
    if change in ("hidden_features", "dtype"):
        clf.set_params(**{change: {"hidden_features": 6, "dtype": "float64"}[change]})
    with pytest.raises(ValueError, match=message):
        clf.fit(*data)
    assert clf.n_iter_ == n_iter


def test_early_stopping_keeps_the_best_epoch():
    """validation_scores_ are minus the cost on the held-out part (the split documented: stratified, with
    random_state); training stops n_iter_no_change epochs after the best one, and model_ holds that epoch's
    parameters: its log loss on the held-out part is minus best_validation_score_."""
    X, y = noisy()
    clf = ShallowClassifier(
        hidden_features=16,
        lr=1.0,
        max_epochs=20_000,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=50,
        random_state=0,
    ).fit(X, y)
    scores = clf.validation_scores_
    best = int(np.argmax(scores))
    assert clf.n_iter_ < 20_000 and len(scores) == len(clf.loss_curve_) == clf.n_iter_
    assert clf.n_iter_ == best + 50
    assert clf.best_validation_score_ == max(scores) > scores[-1]
    classes = np.unique(y, return_inverse=True)[1]
    _, val_rows = stratified_split(torch.as_tensor(classes), 0.25, 0)
    X_val, y_val = X[val_rows.numpy()], y[val_rows.numpy()]
    np.testing.assert_allclose(-log_loss(y_val, clf.predict_proba(X_val)), clf.best_validation_score_, **FLOAT32)


def test_without_early_stopping_there_are_no_validation_scores():
    X, y = blobs(2)
    clf = ShallowClassifier(max_epochs=5).fit(X, y)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None


def test_convergence_warning_at_the_epoch_budget_only():
    X, y = blobs(2)
    with pytest.warns(ConvergenceWarning, match="max_epochs=5"):
        ShallowClassifier(max_epochs=5).fit(X, y)
    clf = ShallowClassifier(tol=1e-2).fit(X, y)  # converges long before 2000 epochs
    assert clf.n_iter_ < 2000


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"hidden_features": 0}, ValueError, "hidden_features == 0, must be >= 1"),
        ({"hidden_features": 2.5}, TypeError, "hidden_features"),
        ({"lr": 0}, ValueError, "lr == 0, must be > 0"),
        ({"max_epochs": 0}, ValueError, "max_epochs"),
        ({"tol": -1}, ValueError, "tol"),
        ({"validation_fraction": 1.0}, ValueError, "validation_fraction == 1.0, must be < 1"),
        ({"n_iter_no_change": 0}, ValueError, "n_iter_no_change"),
        ({"early_stopping": "yes"}, TypeError, "early_stopping must be True or False"),
        ({"activation": "softplus"}, ValueError, r"activation must be one of \['relu', 'sigmoid', 'tanh'\]"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of"),
        ({"device": "abacus"}, ValueError, "device must be a torch device"),
        ({"random_state": -1}, ValueError, r"random_state must be None, an int in \[0, 2\*\*32 - 1\]"),
        ({"log_dir": 3}, TypeError, "log_dir must be a path or None"),
    ],
)
def test_bad_parameters_are_refused_at_fit_naming_them(params, error, message):
    X, y = blobs(2)
    clf = ShallowClassifier(**params)  # __init__ stores, fit checks
    with pytest.raises(error, match=message):
        clf.fit(X, y)


def test_bad_data_is_refused():
    X, y = blobs(2)
    with pytest.raises(ValueError, match="one class only, 1: a classifier needs at least 2 classes"):
        ShallowClassifier().fit(X, np.ones(len(X), dtype=int))
    for bad in (np.nan, np.inf):
        X_bad = X.copy()
        X_bad[3, 1] = bad
        with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
            ShallowClassifier().fit(X_bad, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        ShallowClassifier().fit(X, X[:, 0])


def test_fit_and_predict_on_the_device(device):
    """On any device, in float64, the fit of the CPU: its costs and probabilities to float64's rounding."""
    X, y = blobs(3)
    cpu = ShallowClassifier(max_epochs=100, tol=0, random_state=0, dtype="float64").fit(X, y)
    clf = ShallowClassifier(max_epochs=100, tol=0, random_state=0, dtype="float64", device=device).fit(X, y)
    assert clf.model_.W1.dtype == torch.float64 and clf.model_.W1.device.type == device.type
    np.testing.assert_allclose(clf.loss_curve_, cpu.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(clf.predict_proba(X), cpu.predict_proba(X), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict(X), cpu.predict(X))


def test_each_fit_logs_a_run_of_its_own(tmp_path):
    X, y = blobs(2)
    clf = ShallowClassifier(max_epochs=20, log_dir=tmp_path)
    clf.fit(X, y)
    clf.fit(X, y)
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert len(runs) == 2 and all(name.startswith("ShallowClassifier-") for name in runs)
    assert all(list((tmp_path / name).glob("events.out.tfevents.*")) for name in runs)


def test_grid_search_over_a_pipeline_and_cross_validation():
    X, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), ShallowClassifier(max_epochs=300, random_state=0))
    search = GridSearchCV(
        pipeline, {"shallowclassifier__hidden_features": [2, 8], "shallowclassifier__lr": [0.5, 2.0]}, cv=3
    ).fit(X, y)
    assert search.best_score_ > 0.9
    assert set(search.best_params_) == {"shallowclassifier__hidden_features", "shallowclassifier__lr"}
    scores = cross_val_score(pipeline, X, y, cv=5)
    assert scores.shape == (5,) and scores.mean() > 0.9


def run_experiment(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXPERIMENTS / script), *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_digits_experiment_meets_its_goal():
    """At least 95% test accuracy, and no more than 1 point below MLPClassifier's with the same algorithm."""
    out = run_experiment("digits.py", "--repeats", "1")  # the accuracies do not depend on the repeats
    rows = [(name, float(value)) for name, value in re.findall(r"^\| (.+?) \| \d+ \| ([\d.]+)% \|", out, re.M)]
    ours = next(value for name, value in rows if name.startswith("torch_shallow ShallowClassifier"))
    theirs = next(value for name, value in rows if name.startswith("scikit-learn MLPClassifier, batch GD"))
    assert ours >= 95.0 and ours >= theirs - 1.0, out


def test_breast_cancer_early_stopping_marks_its_best_epoch(tmp_path):
    """The early-stopping run of experiments/breast_cancer.py stops --patience evaluations (10 epochs apart) after
    its best epoch, prints it, and marks it in TensorBoard at the epoch of the lowest validation cost."""
    out = run_experiment("breast_cancer.py", "--epochs", "800", "--patience", "20", "--log-dir", str(tmp_path / "run"))
    row = re.search(
        r"^\| torch_shallow .*early stopping.*best epoch \*\*(\d+)\*\*, stopped at (\d+) \| ([\d.]+)% \|$", out, re.M
    )
    best, stopped, accuracy = int(row[1]), int(row[2]), float(row[3])
    assert stopped == best + 20 * 10 < 800 and accuracy >= 95.0
    events = EventAccumulator(str(tmp_path / "run-early_stopping"))
    events.Reload()
    (marker,) = events.Scalars("early_stopping/best_val_cost")
    val = [e for e in events.Scalars("cost/val") if e.step < stopped]
    assert marker.step == best == min(val, key=lambda e: e.value).step
    assert marker.value == pytest.approx(min(e.value for e in val), rel=1e-6)
    (text,) = events.Tensors("early_stopping/text_summary")
    assert f"Best epoch **{best}**" in text.tensor_proto.string_val[0].decode()


def test_readme_example(tmp_path, monkeypatch):
    """The example of the guide's page "With scikit-learn" (once the README's section), run as it stands."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "sklearn.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, re.S)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "docs/guide/sklearn.md example", "exec"), scope)
    net = scope["net"]
    assert isinstance(net, ShallowNet) and net.output == "softmax" and net.out_features == 3
    assert scope["search"].best_score_ > 0.9


def test_warm_start_checks_which_classes_not_how_many():
    """Classes {1, 2} after {0, 1}: as many, but other ones; the model's output units would mean other classes."""
    X, y = blobs(3)
    two = y < 2
    clf = ShallowClassifier(max_epochs=5, warm_start=True).fit(X[two], y[two])
    n_iter, W1 = clf.n_iter_, clf.model_.W1.clone()
    with pytest.raises(ValueError, match=r"fitted on the classes \[0, 1\]; this y has \[1, 2\]"):
        clf.fit(X[y > 0], y[y > 0])
    assert clf.n_iter_ == n_iter and torch.equal(clf.model_.W1, W1)


def test_a_device_this_machine_lacks_is_refused_at_fit_naming_device():
    X, y = blobs(2)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for device, message in (
        ("meta", r"device must be 'cpu' or a CUDA device such as 'cuda:0', got 'meta'"),
        (f"cuda:{count}", rf"device='cuda:{count}', but this machine has {count} CUDA device\(s\)"),
    ):
        clf = ShallowClassifier(max_epochs=2, device=device)  # __init__ stores, fit checks
        with pytest.raises(ValueError, match=message):
            clf.fit(X, y)
        assert not hasattr(clf, "model_")


# ShallowRegressor ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_regressor_follows_mlp_regressors_full_batch_gradient_descent(activation):
    """From the same θ(0), ShallowRegressor's loss curve is MLPRegressor's with plain full-batch gradient descent:
    solver="sgd", one batch of all n samples, no momentum, no L2 penalty, a constant step."""
    from sklearn.neural_network import MLPRegressor

    X, y = make_regression(n_samples=80, n_features=3, noise=5.0, random_state=0)
    X, y = StandardScaler().fit_transform(X), (y - y.mean()) / y.std()
    epochs, lr = 60, 0.2
    ours = ShallowRegressor(8, activation, lr=lr, max_epochs=epochs, tol=0, random_state=3, dtype="float64").fit(X, y)
    start = ShallowNet(3, 8, 1, activation, "identity", dtype=torch.float64)
    start.reset_parameters(torch.Generator().manual_seed(3))
    theirs = MLPRegressor(
        hidden_layer_sizes=(8,),
        activation={"sigmoid": "logistic"}.get(activation, activation),
        solver="sgd",
        batch_size=len(X),
        momentum=0,
        alpha=0,
        learning_rate="constant",
        learning_rate_init=lr,
        shuffle=False,
        max_iter=1,
        tol=0,
        n_iter_no_change=epochs + 1,
        warm_start=True,
        random_state=0,
    )
    theirs.fit(X, y)  # one epoch to build its arrays, then θ(0) put in their place
    theirs.coefs_ = [start.W1.detach().numpy().T.copy(), start.W2.detach().numpy().T.copy()]
    theirs.intercepts_ = [start.b1.detach().numpy().copy(), start.b2.detach().numpy().copy()]
    theirs.loss_curve_ = []
    theirs.set_params(max_iter=epochs)
    theirs.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6, atol=1e-9)


def test_regressor_seeds_theta_0_as_shallownet_does_and_keeps_the_targets_shape():
    X, Y = make_regression(n_samples=60, n_features=4, n_targets=2, random_state=1)
    X, Y = StandardScaler().fit_transform(X), StandardScaler().fit_transform(Y)
    two = ShallowRegressor(6, "tanh", max_epochs=1, random_state=7, dtype="float64").fit(X, Y)
    expected = ShallowNet(4, 6, 2, "tanh", "identity", dtype=torch.float64)
    expected.reset_parameters(torch.Generator().manual_seed(7))
    assert two.loss_curve_[0] == pytest.approx(expected.cost(torch.tensor(X), torch.tensor(Y)).item(), rel=1e-12)
    assert two.predict(X).shape == (60, 2) and two.n_outputs_ == 2
    one = ShallowRegressor(6, "tanh", lr=0.3, max_epochs=2000, random_state=0).fit(X, Y[:, 0])
    assert one.predict(X).shape == (60,) and one.model_.out_features == 1
    assert one.score(X, Y[:, 0]) == pytest.approx(r2_score(Y[:, 0], one.predict(X)))
    assert one.score(X, Y[:, 0]) > 0.9
    with pytest.raises(ValueError, match="fitted on 1 targets; this y has 2"):
        one.set_params(warm_start=True).fit(X, Y)
