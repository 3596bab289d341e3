"""Ten classes: scikit-learn's 8×8 digits with ShallowClassifier (softmax outputs) beside MLPClassifier, the same
network and the same full-batch gradient descent, test accuracy and fit time measured in the same run.

    pip install '.[experiments]'    # scikit-learn
    python experiments/digits.py

The 1,797 digits are split 75/25, stratified (seed 0), and standardised with the training part's statistics. Both
classifiers have one layer of logistic (sigmoid) hidden units, softmax outputs and the mean log loss without
regularisation, and take plain gradient steps over all training samples: MLPClassifier with solver="sgd",
batch_size=n, momentum=0, alpha=0, its stopping rule turned off. Same algorithm, same step size, same epochs: what
differs is the initial draw (Glorot's uniform rule there, nn.Linear's here) and the implementation, which is what the
time compares. MLPClassifier's default, mini-batch Adam, is shown too, as what a scikit-learn user would run.
"""

import argparse
import statistics
import time
import warnings

import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from torch_shallow.sklearn import ShallowClassifier


def timed_fit(model, X, y, repeats: int) -> float:
    """The median of ``repeats`` fits' seconds (the model keeps the last fit, the same each time: seeded); a short
    fit of a copy first, so that one-off start-up costs (threads, BLAS) are not timed."""
    budget = "max_epochs" if "max_epochs" in model.get_params() else "max_iter"
    clone(model).set_params(**{budget: 5}).fit(X, y)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(X, y)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=32, help="hidden units of both (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=1000, help="gradient steps of both (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1.0, help="step size of both (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of θ(0) (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="fits timed, of which the median (default: %(default)s)")
    args = parser.parse_args()

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=args.seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    n = len(y_train)
    models = {
        f"torch_shallow ShallowClassifier, batch GD, lr {args.lr:g}": ShallowClassifier(
            hidden_features=args.hidden, lr=args.lr, max_epochs=args.epochs, tol=0, random_state=args.seed
        ),
        f"scikit-learn MLPClassifier, batch GD (sgd, batch_size={n}, momentum 0), lr {args.lr:g}": MLPClassifier(
            (args.hidden,),
            activation="logistic",
            solver="sgd",
            batch_size=n,
            momentum=0,
            alpha=0,
            learning_rate_init=args.lr,
            max_iter=args.epochs,
            tol=0,
            n_iter_no_change=args.epochs,
            shuffle=False,
            random_state=args.seed,
        ),
        "scikit-learn MLPClassifier, its default Adam (mini-batches of 200)": MLPClassifier(
            (args.hidden,), activation="logistic", max_iter=args.epochs, random_state=args.seed
        ),
    }
    print(
        f"Digits: {n} training and {len(y_test)} test samples, 64 features, 10 classes, {args.hidden} logistic "
        f"hidden units, {args.epochs} epochs, seed {args.seed}, {torch.get_num_threads()} torch threads\n"
    )
    print(f"| model | epochs | test accuracy | fit time (median of {args.repeats}) |")
    print("|---|---|---|---|")
    for name, model in models.items():
        with warnings.catch_warnings():  # both stop at the epoch budget, by design here
            warnings.simplefilter("ignore", ConvergenceWarning)
            seconds = timed_fit(model, X_train, y_train, args.repeats)
        print(f"| {name} | {model.n_iter_} | {100 * model.score(X_test, y_test):.2f}% | {seconds:.2f} s |")


if __name__ == "__main__":
    main()
