"""Real data: the breast cancer Wisconsin set (569 samples, 30 features, shipped inside scikit-learn), a seeded
stratified train/validation split, features standardised with the training part's statistics only, and the
validation accuracy beside scikit-learn's LogisticRegression and MLPClassifier on the same split.

A second run stops early: it holds out 20% of the training part (stratified, the same seed), trains on the rest and
stops once the cost on that 20% has not decreased for --patience evaluations (every 10 epochs), keeping the
parameters of its best epoch. The validation split is left out of that choice, so its accuracy is measured as the
other rows' is. The best epoch is printed and marked in the run's TensorBoard directory (<log dir>-early_stopping):
a text summary, and the scalar early_stopping/best_val_cost at the best epoch's step.

    pip install '.[experiments]'    # scikit-learn
    python experiments/breast_cancer.py
"""

import argparse

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from torch.utils.tensorboard import SummaryWriter

from torch_shallow import ShallowNet, TrainConfig, default_run_dir, evaluate, fit
from torch_shallow.run import new_run_dir

# The share of the training part held out to decide when to stop.
EARLY_STOPPING_FRACTION = 0.2


def split(seed: int, dtype=torch.float32):
    """(X_train, Y_train, X_val, Y_val) as tensors, standardised with the training part's mean and deviation."""
    X, y = load_breast_cancer(return_X_y=True)  # y: 1 = benign, 0 = malignant
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    mean, std = X_train.mean(0), X_train.std(0)
    tensors = [torch.as_tensor(a, dtype=dtype) for a in ((X_train - mean) / std, y_train, (X_val - mean) / std, y_val)]
    return tensors[0], tensors[1].unsqueeze(1), tensors[2], tensors[3].unsqueeze(1)


def early_stopping_run(X, Y, X_val, Y_val, args, log_dir) -> tuple[int, int, float, str]:
    """Train from the same θ(0) on 80% of the training part, stopping on the other 20%; returns the epochs run, the
    best epoch (whose parameters the model keeps), the accuracy on the validation split and the run directory."""
    X_fit, X_stop, Y_fit, Y_stop = train_test_split(
        X, Y, test_size=EARLY_STOPPING_FRACTION, stratify=Y[:, 0], random_state=args.seed
    )
    net = ShallowNet(X.shape[1], args.hidden)
    net.reset_parameters(torch.Generator().manual_seed(args.seed))
    es_dir = new_run_dir(f"{log_dir}-early_stopping")
    config = TrainConfig(
        lr=args.lr, max_epochs=args.epochs, tol=0, log_dir=es_dir, log_every=10, patience=args.patience
    )
    history = fit(
        net,
        X_fit,
        Y_fit,
        config,
        val=(X_stop, Y_stop),
        hparams={"dataset": "breast_cancer", "seed": args.seed, "early_stopping": EARLY_STOPPING_FRACTION},
    )
    best_cost = history.val_costs[history.val_epochs.index(history.best_epoch)]
    with SummaryWriter(es_dir) as writer:  # the run has ended and released its directory
        writer.add_scalar("early_stopping/best_val_cost", best_cost, history.best_epoch)
        writer.add_text(
            "early_stopping",
            f"Best epoch **{history.best_epoch}** (early-stopping cost {best_cost:.4f}), "
            f"patience {args.patience} evaluations 10 epochs apart; the run ended at epoch "
            f"{history.epochs} ({history.stop_reason}), keeping the best epoch's parameters.",
            history.best_epoch,
        )
    return history.epochs, history.best_epoch, evaluate(net, X_val, Y_val)[1], str(es_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of θ(0) (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=8, help="d1 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3000, help="epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default: %(default)s)")
    parser.add_argument(
        "--patience",
        type=int,
        default=20,
        help="early stopping: evaluations (10 epochs apart) with no lower cost (default: %(default)s)",
    )
    parser.add_argument("--log-dir", help="run directory (default: runs/breast_cancer-<timestamp>)")
    args = parser.parse_args()

    X, Y, X_val, Y_val = split(args.seed)
    net = ShallowNet(X.shape[1], args.hidden)
    net.reset_parameters(torch.Generator().manual_seed(args.seed))
    log_dir = args.log_dir or default_run_dir("breast_cancer")
    config = TrainConfig(lr=args.lr, max_epochs=args.epochs, tol=0, log_dir=log_dir, log_every=10)
    history = fit(net, X, Y, config, val=(X_val, Y_val), hparams={"dataset": "breast_cancer", "seed": args.seed})

    stopped, best_epoch, es_accuracy, es_dir = early_stopping_run(X, Y, X_val, Y_val, args, log_dir)

    x, y, x_val, y_val = X.numpy(), Y.numpy().ravel(), X_val.numpy(), Y_val.numpy().ravel()
    baselines = {
        "scikit-learn LogisticRegression": LogisticRegression(max_iter=5000).fit(x, y),
        f"scikit-learn MLPClassifier ({args.hidden} logistic units, adam)": MLPClassifier(
            hidden_layer_sizes=(args.hidden,), activation="logistic", max_iter=5000, random_state=args.seed
        ).fit(x, y),
    }
    print(f"Breast cancer Wisconsin: {len(y)} training and {len(y_val)} validation samples, seed {args.seed}\n")
    print("| model | validation accuracy |")
    print("|---|---|")
    print(
        f"| torch_shallow ShallowNet({X.shape[1]}, {args.hidden}), batch GD, {history.epochs} epochs | "
        f"{100 * history.val_accuracy:.2f}% |"
    )
    print(
        f"| torch_shallow ShallowNet({X.shape[1]}, {args.hidden}), batch GD, early stopping on "
        f"{EARLY_STOPPING_FRACTION:.0%} of the training part (patience {args.patience} × 10 epochs): "
        f"best epoch **{best_epoch}**, stopped at {stopped} | {100 * es_accuracy:.2f}% |"
    )
    for name, model in baselines.items():
        print(f"| {name} | {100 * model.score(x_val, y_val):.2f}% |")
    print(f"\nTensorBoard: tensorboard --logdir {log_dir} (early stopping: {es_dir})")


if __name__ == "__main__":
    main()
