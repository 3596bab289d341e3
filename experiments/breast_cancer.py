"""Real data: the breast cancer Wisconsin set (569 samples, 30 features, shipped inside scikit-learn), a seeded
stratified train/validation split, features standardised with the training part's statistics only, and the
validation accuracy beside scikit-learn's LogisticRegression and MLPClassifier on the same split.

    pip install '.[experiments]'    # scikit-learn
    python experiments/breast_cancer.py
"""

import argparse

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from torch_shallow import ShallowNet, TrainConfig, default_run_dir, fit


def split(seed: int, dtype=torch.float32):
    """(X_train, Y_train, X_val, Y_val) as tensors, standardised with the training part's mean and deviation."""
    X, y = load_breast_cancer(return_X_y=True)  # y: 1 = benign, 0 = malignant
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    mean, std = X_train.mean(0), X_train.std(0)
    tensors = [torch.as_tensor(a, dtype=dtype) for a in ((X_train - mean) / std, y_train, (X_val - mean) / std, y_val)]
    return tensors[0], tensors[1].unsqueeze(1), tensors[2], tensors[3].unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of θ(0) (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=8, help="d1 (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=3000, help="epochs (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate (default: %(default)s)")
    parser.add_argument("--log-dir", help="run directory (default: runs/breast_cancer-<timestamp>)")
    args = parser.parse_args()

    X, Y, X_val, Y_val = split(args.seed)
    net = ShallowNet(X.shape[1], args.hidden)
    net.reset_parameters(torch.Generator().manual_seed(args.seed))
    log_dir = args.log_dir or default_run_dir("breast_cancer")
    config = TrainConfig(lr=args.lr, max_epochs=args.epochs, tol=0, log_dir=log_dir, log_every=10)
    history = fit(net, X, Y, config, val=(X_val, Y_val), hparams={"dataset": "breast_cancer", "seed": args.seed})

    x, y, x_val, y_val = X.numpy(), Y.numpy().ravel(), X_val.numpy(), Y_val.numpy().ravel()
    baselines = {
        "scikit-learn LogisticRegression": LogisticRegression(max_iter=5000).fit(x, y),
        f"scikit-learn MLPClassifier ({args.hidden} logistic units, adam)": MLPClassifier(
            hidden_layer_sizes=(args.hidden,), activation="logistic", max_iter=5000, random_state=args.seed).fit(x, y),
    }
    print(f"Breast cancer Wisconsin: {len(y)} training and {len(y_val)} validation samples, seed {args.seed}\n")
    print("| model | validation accuracy |")
    print("|---|---|")
    print(f"| torch_shallow ShallowNet({X.shape[1]}, {args.hidden}), batch GD, {history.epochs} epochs | "
          f"{100 * history.val_accuracy:.2f}% |")
    for name, model in baselines.items():
        print(f"| {name} | {100 * model.score(x_val, y_val):.2f}% |")
    print(f"\nTensorBoard: tensorboard --logdir {log_dir}")


if __name__ == "__main__":
    main()
