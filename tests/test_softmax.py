"""K classes through a softmax output, against torch's own cross_entropy, and early stopping on validation data."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from torch_shallow import ACTIVATIONS, ShallowBCEFunction, ShallowNet, TrainConfig, fit, fit_many, planar
from torch_shallow.checkpoint import load_checkpoint, trained_weights
from torch_shallow.cli import main

from conftest import assert_close


def three_classes(n=90, dtype=torch.float64, seed=0):
    """Three Gaussian blobs in 2-D; Y one-hot (n, 3)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    X = centres[labels] + torch.randn(n, 2, generator=g)
    return X.to(dtype), F.one_hot(labels, 3).to(dtype), labels


def softmax_net(hidden=5, activation="tanh", dtype=torch.float64, seed=0):
    net = ShallowNet(2, hidden, 3, activation, output="softmax", dtype=dtype)
    net.reset_parameters(torch.Generator().manual_seed(seed))
    return net


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_cost_and_its_gradients_equal_torch_cross_entropy(activation, dtype):
    X, Y, labels = three_classes(dtype=dtype)
    net = softmax_net(activation=activation, dtype=dtype)
    J = net.cost(X, Y)
    ours = torch.autograd.grad(J, list(net.parameters()))
    theirs_J = F.cross_entropy(net(X), labels)  # autograd through the logits, torch's own softmax cross-entropy
    theirs = torch.autograd.grad(theirs_J, list(net.parameters()))
    assert_close(J, theirs_J)
    for a, b in zip(ours, theirs):
        assert_close(a, b)


def test_soft_labels_equal_cross_entropy_with_probabilities():
    X, _, _ = three_classes()
    Y = torch.softmax(torch.randn(90, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64), -1)
    net = softmax_net()
    assert_close(net.cost(X, Y), F.cross_entropy(net(X), Y))


@pytest.mark.parametrize("block_rows", [None, 7])
def test_gradcheck_of_the_softmax_cost(block_rows):
    X, Y, _ = three_classes(n=12)
    net = softmax_net(hidden=3)
    theta = [p.detach().clone().requires_grad_() for p in net.parameters()]
    X = X.clone().requires_grad_()

    def cost(X, *t):
        return ShallowBCEFunction.apply(X, Y, *t, "tanh", block_rows, (True,) * 5, "softmax")[0]

    assert torch.autograd.gradcheck(cost, (X, *theta))
    assert torch.autograd.gradgradcheck(
        lambda X, *t: ShallowBCEFunction.apply(X, Y, *t, "tanh", block_rows, (False,) * 5, "softmax")[0], (X, *theta)
    )


def test_predictions_are_rows_of_probabilities_and_one_hot_argmax():
    X, _, _ = three_classes()
    net = softmax_net()
    P = net.predict_proba(X)
    torch.testing.assert_close(P.sum(1), torch.ones(90, dtype=torch.float64))
    assert torch.equal(net.predict(X), F.one_hot(P.argmax(1), 3).double())


def test_bad_softmax_input_is_refused():
    X, Y, _ = three_classes()
    net = softmax_net()
    with pytest.raises(ValueError, match="rows must sum to 1"):
        net.cost(X, Y * 0.5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ShallowNet(2, 4, 1, output="softmax")
    with pytest.raises(ValueError, match="output must be 'sigmoid', 'softmax' or 'identity'"):
        ShallowNet(2, 4, 3, output="relu")


def test_fit_reports_the_argmax_accuracy():
    X, Y, labels = three_classes()
    net = softmax_net()
    history = fit(net, X, Y, TrainConfig(lr=0.5, max_epochs=300, tol=0))
    expected = (net(X).argmax(1) == labels).double().mean().item()
    assert history.train_accuracy == pytest.approx(expected)
    assert expected > 0.8


# Early stopping -------------------------------------------------------------------------------------------------------


def halves():
    """The planar data in float64, split into training and validation halves."""
    X, Y = planar(dtype=torch.float64)
    return (X[::2], Y[::2]), (X[1::2], Y[1::2])


def tanh_net():
    """A seeded 50-unit tanh model, which overfits half the planar data within a few thousand epochs."""
    model = ShallowNet(2, 50, activation="tanh", dtype=torch.float64)
    model.reset_parameters(torch.Generator().manual_seed(0))
    return model


def test_early_stopping_restores_the_best_epoch():
    train, val = halves()

    stopped = tanh_net()
    history = fit(stopped, *train, TrainConfig(lr=2.0, max_epochs=20000, tol=0, log_every=20, patience=10), val=val)
    assert history.stop_reason == "early_stopping" and history.epochs < 20000
    best = history.val_epochs[history.val_costs.index(min(history.val_costs))]
    assert history.best_epoch == best
    assert history.epochs == history.val_epochs[-1]  # ten evaluations without improvement, then stop there
    assert history.val_epochs[-1] == best + 10 * 20
    oracle = tanh_net()  # an independent run of exactly best_epoch steps holds θ(best_epoch)
    fit(oracle, *train, TrainConfig(lr=2.0, max_epochs=best, tol=0))
    for p, q in zip(stopped.parameters(), oracle.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    assert history.final_cost == pytest.approx(oracle.cost(*train).item(), rel=1e-12)


@pytest.mark.parametrize("many", [False, True])
def test_an_early_stopping_run_resumes_to_the_uninterrupted_result(tmp_path, many):
    """Stopped between its best epoch and its early stop (at max_epochs, its best θ put back), then resumed with more
    epochs: the same history and parameters as a run never stopped, for the checkpoint keeps the best epoch's θ
    and the last epoch's, which the resumed run goes on from; fit_many's models too."""
    train, val = halves()

    def run(model, config, **kwargs):
        if many:
            return fit_many([model, tanh_net()], *train, config, lrs=[2.0, 0.5], val=val, **kwargs)[0]
        return fit(model, *train, config, val=val, **kwargs)

    config = TrainConfig(lr=2.0, max_epochs=20000, tol=0, log_every=20, patience=10)
    whole = tanh_net()
    expected = run(whole, config)
    assert expected.stop_reason == "early_stopping"
    stopped = tanh_net()
    first = run(
        stopped, dataclasses.replace(config, max_epochs=expected.best_epoch + 100, checkpoint=tmp_path / "c.pt")
    )
    assert first.stop_reason == "max_epochs" and first.best_epoch == expected.best_epoch
    state = load_checkpoint(tmp_path / "c.pt")  # the trained model (what --init-from takes) is the best epoch's
    key = (lambda w: w[0]) if many else (lambda w: w)
    assert all(torch.equal(key(trained_weights(state)[name]), p) for name, p in stopped.named_parameters())
    trained_W1 = state["callbacks"]["EarlyStopping"]["trained"][0]
    assert not torch.equal(key(trained_W1), stopped.W1)  # the last epoch's, to go on from
    resumed = tanh_net()
    history = run(resumed, dataclasses.replace(config, checkpoint=tmp_path / "c.pt"), resume_from=tmp_path / "c.pt")
    assert dataclasses.asdict(history) == dataclasses.asdict(expected)
    for p, q in zip(resumed.parameters(), whole.parameters()):
        assert torch.equal(p, q)


def test_early_stopping_needs_validation_data():
    X, Y = planar()
    with pytest.raises(ValueError, match="early stopping .* needs validation data"):
        fit(ShallowNet(2, 4), X, Y, TrainConfig(max_epochs=10, patience=3))


def test_the_command_line_splits_validation_data_and_stops_early(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--dataset",
                "moons",
                "--hidden",
                "40",
                "--activation",
                "tanh",
                "--lr",
                "2",
                "--val-fraction",
                "0.3",
                "--patience",
                "5",
                "--log-every",
                "20",
                "--epochs",
                "20000",
                "--tol",
                "0",
                "--log-dir",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "early_stopping, best epoch" in out and "validation accuracy" in out
    assert main(["train", "--patience", "5", "--no-log"]) == 2
    assert "--patience without --val-fraction" in capsys.readouterr().err


def test_a_csv_of_k_classes_trains_softmax_outputs(tmp_path, capsys):
    from torch_shallow import load_csv
    from torch_shallow.data import csv_chunks

    X, _, labels = three_classes(n=60, dtype=torch.float32)
    path = tmp_path / "blobs.csv"
    path.write_text("a,b,class\n" + "".join(f"{x:.4f},{y:.4f},{c}\n" for (x, y), c in zip(X.tolist(), labels.tolist())))
    X_read, Y_read = load_csv(path, output="softmax")
    assert torch.equal(Y_read[:, 0].long(), labels)
    small_blocks = [y for _, y in csv_chunks(path, block_size=64, output="softmax")]  # Arrow's path, block by block
    assert len(small_blocks) > 3 and torch.equal(torch.from_numpy(np.concatenate(small_blocks)).long(), labels)
    with pytest.raises(ValueError, match=r":4: label column 'class' must be 0 or 1, got '2'"):
        load_csv(path)  # without classes, the slides' 0/1 labels
    assert (
        main(
            [
                "train",
                "--csv",
                str(path),
                "--output",
                "softmax",
                "--hidden",
                "5",
                "--activation",
                "tanh",
                "--lr",
                "0.5",
                "--epochs",
                "300",
                "--no-log",
            ]
        )
        == 0
    )
    accuracy = float(capsys.readouterr().out.split("training accuracy ")[1].split("%")[0])
    assert accuracy > 80  # three classes, the argmax right for most points
    path.write_text("a,b,class\n1,2,0\n3,4,1.5\n")
    assert main(["train", "--csv", str(path), "--output", "softmax", "--no-log"]) == 2
    assert (
        "blobs.csv:3: label column 'class' must be a class number 0, 1, ..., 65535, got '1.5'"
        in capsys.readouterr().err
    )
