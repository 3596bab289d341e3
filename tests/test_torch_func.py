"""ShallowNet inside other people's torch code: the torch.func transforms, autocast, export and ONNX, each
against the same computation written with plain torch operations; and the README's examples, run as they stand."""

import re
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, stack_module_state, vmap

from torch_shallow import ACTIVATIONS, ShallowBCEFunction, ShallowNet, ShallowNetFunction, shallow_bce

from conftest import DEVICES, TOLERANCES, assert_close

PLAIN = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


def plain_logits(params, X, activation):
    """Z2 = b2ᵀ + σ(b1ᵀ + X W1ᵀ) W2ᵀ with plain torch operations: the oracle."""
    return PLAIN[activation](X @ params["W1"].T + params["b1"]) @ params["W2"].T + params["b2"]


def plain_cost(params, X, Y, activation):
    return (
        torch.nn.functional.binary_cross_entropy_with_logits(plain_logits(params, X, activation), Y, reduction="sum")
        / X.shape[0]
    )


def ours_cost(params, X, Y, activation):
    return shallow_bce(X, Y, **params, activation=activation)


def problem(activation, dtype, d2=2, n=12, d=3, d1=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = ShallowNet(d, d1, d2, activation=activation, dtype=dtype)
    net.reset_parameters(g)
    X = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
    Y = (torch.rand(n, d2, generator=g) > 0.5).to(dtype)
    if activation == "relu":  # keep every Z1 away from relu's kink, where the two sides' derivatives differ
        with torch.no_grad():
            Z1 = X @ net.W1.T + net.b1
            net.b1 += torch.where(Z1.abs().min(0).values < 1e-3, 0.01, 0.0)
    return net, {k: p.detach() for k, p in net.named_parameters()}, X, Y


def assert_trees_close(actual, expected, dtype):
    assert actual.keys() == expected.keys()
    for key in expected:
        assert_close(actual[key], expected[key], dtype)


CASES = [
    pytest.param(a, dt, d2, id=f"{a}-{str(dt)[6:]}-d2={d2}")
    for a in ACTIVATIONS
    for dt in (torch.float32, torch.float64)
    for d2 in (1, 3)
]


@pytest.mark.parametrize("activation, dtype, d2", CASES)
def test_grad_of_the_cost_and_of_a_function_of_the_logits(activation, dtype, d2):
    net, params, X, Y = problem(activation, dtype, d2)
    assert_trees_close(grad(ours_cost)(params, X, Y, activation), grad(plain_cost)(params, X, Y, activation), dtype)

    def ours(params):  # any function of the logits, through functional_call
        return (functional_call(net, params, (X,)) ** 2).mean()

    assert_trees_close(grad(ours)(params), grad(lambda p: (plain_logits(p, X, activation) ** 2).mean())(params), dtype)


@pytest.mark.parametrize("activation, dtype, d2", CASES)
def test_jacobians_of_the_logits_with_respect_to_X(activation, dtype, d2):
    net, params, X, _ = problem(activation, dtype, d2, n=4)
    expected = jacrev(lambda X: plain_logits(params, X, activation))(X)  # (n, d2, n, d)
    assert_close(jacrev(net)(X), expected, dtype)
    assert_close(jacfwd(net)(X), expected, dtype)


@pytest.mark.parametrize("activation, dtype, d2", CASES)
def test_forward_mode_derivative_of_the_logits_along_every_input(activation, dtype, d2):
    _, params, X, _ = problem(activation, dtype, d2)
    g = torch.Generator().manual_seed(2)
    tangents = [torch.randn(t.shape, generator=g, dtype=torch.float64).to(dtype) for t in (X, *params.values())]
    primals = (X, *params.values())
    ours = jvp(lambda *t: ShallowNetFunction.apply(*t, activation)[0], primals, tuple(tangents))[1]
    names = list(params)
    expected = jvp(lambda X, *p: plain_logits(dict(zip(names, p)), X, activation), primals, tuple(tangents))[1]
    assert_close(ours, expected, dtype)


@pytest.mark.parametrize("activation, dtype, d2", CASES)
def test_per_sample_gradients(activation, dtype, d2):
    _, params, X, Y = problem(activation, dtype, d2)

    def per_sample(cost):
        return vmap(grad(lambda p, x, y: cost(p, x[None], y[None], activation)), in_dims=(None, 0, 0))(params, X, Y)

    ours = per_sample(ours_cost)
    assert ours["W1"].shape == (X.shape[0], *params["W1"].shape)
    assert_trees_close(ours, per_sample(plain_cost), dtype)


@pytest.mark.parametrize("activation, dtype, d2", CASES)
def test_an_ensemble_in_one_vmap(activation, dtype, d2):
    models = [problem(activation, dtype, d2, seed=seed)[0] for seed in range(4)]
    _, _, X, Y = problem(activation, dtype, d2)
    params, buffers = stack_module_state(models)
    base = ShallowNet(3, 5, d2, activation=activation, dtype=dtype).to("meta")

    def cost(params, buffers):
        Z2 = functional_call(base, (params, buffers), (X,))
        return torch.nn.functional.binary_cross_entropy_with_logits(Z2, Y)

    Z2 = vmap(lambda p, b: functional_call(base, (p, b), (X,)))(params, buffers)
    gradients = vmap(grad(cost))(params, buffers)
    for i, model in enumerate(models):
        single = {k: p.detach() for k, p in model.named_parameters()}
        assert_close(Z2[i], plain_logits(single, X, activation), dtype)
        expected = grad(
            lambda p: torch.nn.functional.binary_cross_entropy_with_logits(plain_logits(p, X, activation), Y)
        )(single)
        assert_trees_close({k: g[i] for k, g in gradients.items()}, expected, dtype)


@pytest.mark.parametrize("activation, dtype, d2", CASES)
def test_hessian_vector_products_by_jvp_of_grad(activation, dtype, d2):
    _, params, X, Y = problem(activation, dtype, d2)
    v = {
        k: torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
        for k, p in params.items()
    }

    def hvp(cost):
        return jvp(lambda p: grad(cost)(p, X, Y, activation), (params,), (v,))[1]

    assert_trees_close(hvp(ours_cost), hvp(plain_cost), dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_compiled_grad(activation):
    _, params, X, Y = problem(activation, torch.float64, 2)
    compiled = torch.compile(grad(ours_cost), fullgraph=True)
    assert_trees_close(compiled(params, X, Y, activation), grad(plain_cost)(params, X, Y, activation), torch.float64)


def test_a_batched_call_runs_batched_operations_not_a_loop():
    """Under vmap the Functions' forward runs once, on the whole batch, not once per batch entry."""
    _, params, X, Y = problem("sigmoid", torch.float64, 1)
    calls = []
    original = ShallowBCEFunction.forward

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    ShallowBCEFunction.forward = staticmethod(counting)
    try:
        vmap(grad(lambda p, x, y: ours_cost(p, x[None], y[None], "sigmoid")), in_dims=(None, 0, 0))(params, X, Y)
    finally:
        ShallowBCEFunction.forward = staticmethod(original)
    assert len(calls) == 1


def test_apply_takes_the_five_tensors_with_sigmoid_by_default():
    net, params, X, Y = problem("sigmoid", torch.float64, 2)
    Z2, A1 = ShallowNetFunction.apply(X, *params.values())
    assert_close(Z2, plain_logits(params, X, "sigmoid"), torch.float64)
    assert not A1.requires_grad
    J, *gradients = ShallowBCEFunction.apply(X, Y, *params.values())
    assert_close(J, plain_cost(params, X, Y, "sigmoid"), torch.float64)
    assert gradients == [None] * 5  # none asked for: backward computes them
    assert torch.autograd.gradcheck(
        lambda *t: ShallowNetFunction.apply(*t)[0], [t.clone().requires_grad_() for t in (X, *params.values())]
    )


# Autocast ---------------------------------------------------------------------------------------------------------

AUTOCAST = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=DEVICES[1].marks),
]


@pytest.mark.parametrize("device, low", AUTOCAST)
def test_autocast_runs_as_linear_sigma_linear(device, low):
    torch.manual_seed(0)
    body = torch.nn.Linear(6, 3, device=device)
    net = ShallowNet(3, 4, device=device)
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 1)).to(device)
    with torch.no_grad():
        reference[0].weight.copy_(net.W1), reference[0].bias.copy_(net.b1)
        reference[2].weight.copy_(net.W2), reference[2].bias.copy_(net.b2)
    X, Y = torch.randn(64, 6, device=device), torch.randint(0, 2, (64, 1), device=device).float()
    with torch.autocast(device, dtype=low):
        ours, theirs = net(body(X)), reference(body(X))
        J = net.cost(body(X), Y)
        J_theirs = torch.nn.functional.binary_cross_entropy_with_logits(reference(body(X)), Y)
    assert ours.dtype == theirs.dtype == low
    torch.testing.assert_close(ours, theirs, rtol=0.02, atol=0.02)
    assert J.dtype == torch.float32
    torch.testing.assert_close(J, J_theirs, rtol=0.02, atol=0.02)
    J.backward()
    assert body.weight.grad is not None and body.weight.grad.dtype == torch.float32
    assert net.W1.grad.dtype == torch.float32
    expected = torch.autograd.grad(J_theirs, reference[0].weight)[0]
    torch.testing.assert_close(net.W1.grad, expected, rtol=0.05, atol=0.01)


def test_outside_autocast_mismatched_dtypes_stay_an_error():
    net = ShallowNet(3, 4)
    with pytest.raises(TypeError, match="X has dtype torch.bfloat16 but the parameters have torch.float32"):
        net(torch.randn(5, 3, dtype=torch.bfloat16))


# Deployment ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_export_with_a_dynamic_number_of_rows(activation):
    net, params, X, _ = problem(activation, torch.float32, 2)
    rows = torch.export.Dim("rows", min=1)
    exported = torch.export.export(net.eval(), (X,), dynamic_shapes={"X": {0: rows}})
    for n in (1, 7, 300):
        X_n = torch.randn(n, 3)
        torch.testing.assert_close(
            exported.module()(X_n), plain_logits(params, X_n, activation), **TOLERANCES[torch.float32]
        )


def test_onnx_export_runs_in_onnxruntime_on_another_batch_size(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxscript, onnxruntime)")
    net, params, X, _ = problem("tanh", torch.float32, 2)
    rows = torch.export.Dim("rows", min=1)
    program = torch.onnx.export(net.eval(), (X,), dynamic_shapes={"X": {0: rows}}, dynamo=True, verbose=False)
    program.save(tmp_path / "net.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"))
    (name,) = [i.name for i in session.get_inputs()]
    X_other = torch.randn(257, 3)
    out = session.run(None, {name: X_other.numpy()})[0]
    torch.testing.assert_close(
        torch.from_numpy(out), plain_logits(params, X_other, "tanh"), **TOLERANCES[torch.float32]
    )


# The guide's examples -----------------------------------------------------------------------------------------------


def readme_examples() -> list[str]:
    """The examples of the guide's page "In your own torch code" (once the README's section of that name)."""
    text = (Path(__file__).parents[1] / "docs" / "guide" / "torch.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def run_example(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    scope = {}
    exec(compile(readme_examples()[index], f"docs/guide/torch.md example {index + 1}", "exec"), scope)
    return scope


def test_the_readme_has_its_five_examples():
    assert len(readme_examples()) == 5


def test_readme_head_on_a_frozen_body(tmp_path, monkeypatch):
    s = run_example(0, tmp_path, monkeypatch)
    features, head, X, Y = s["features"], s["head"], s["X"], s["Y"]
    assert all(p.grad is None for p in features.parameters())  # the body stays frozen
    params = {k: p.detach() for k, p in head.named_parameters()}
    assert s["J"].item() == pytest.approx(
        plain_cost(params, features(X), Y.float(), "sigmoid").item(), rel=1e-4, abs=1e-3
    )  # the last cost, of the parameters before the last step
    start = ShallowNet(8, 4)  # the cost went down from where it started
    assert (
        s["J"].item()
        < torch.nn.functional.binary_cross_entropy_with_logits(start(features(X)).detach(), Y.float()).item() + 0.05
    )


def test_readme_per_sample_gradients(tmp_path, monkeypatch):
    s = run_example(1, tmp_path, monkeypatch)
    params, X, Y, per_sample = s["params"], s["X"], s["Y"], s["per_sample"]
    for i in (0, 17, 63):
        expected = grad(plain_cost)(params, X[i : i + 1], Y[i : i + 1], "sigmoid")
        assert_trees_close({k: g[i] for k, g in per_sample.items()}, expected, torch.float32)


def test_readme_ensemble(tmp_path, monkeypatch):
    s = run_example(2, tmp_path, monkeypatch)
    X, Y = s["X"], s["Y"]
    assert s["Z2"].shape == (10, 100, 1) and s["gradients"]["W1"].shape == (10, 8, 2)
    for i, model in enumerate(s["models"]):
        single = {k: p.detach() for k, p in model.named_parameters()}
        assert_close(s["Z2"][i], plain_logits(single, X, "tanh"), torch.float32)
        expected = grad(lambda p: torch.nn.functional.binary_cross_entropy_with_logits(plain_logits(p, X, "tanh"), Y))(
            single
        )
        assert_trees_close({k: g[i] for k, g in s["gradients"].items()}, expected, torch.float32)


def test_readme_mixed_precision(tmp_path, monkeypatch):
    s = run_example(3, tmp_path, monkeypatch)
    assert s["Z2"].dtype == torch.bfloat16 and s["J"].dtype == torch.float32
    assert s["body"].weight.grad.dtype == torch.float32 and s["head"].W1.grad.dtype == torch.float32


def test_readme_deployment(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime", reason="the deploy extra (onnx, onnxscript, onnxruntime)")
    s = run_example(4, tmp_path, monkeypatch)
    params = {k: p.detach() for k, p in s["net"].named_parameters()}
    expected = plain_logits(params, s["X"], "sigmoid")
    assert s["Z2"].shape == (1000, 1)
    torch.testing.assert_close(torch.from_numpy(s["Z2"]), expected, **TOLERANCES[torch.float32])
    torch.testing.assert_close(s["exported"].module()(s["X"]), expected, **TOLERANCES[torch.float32])


# Identity outputs and layers without biases under the transforms --------------------------------------------------


def plain_squared_error(params, X, Y, activation):
    Z2 = PLAIN[activation](X @ params["W1"].T + params.get("b1", 0)) @ params["W2"].T + params.get("b2", 0)
    return ((Z2 - Y) ** 2).sum() / (2 * X.shape[0])


@pytest.mark.parametrize("bias", [True, False, (True, False)], ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_squared_error_without_biases_under_the_transforms(activation, bias):
    """grad, per-sample grads by vmap, jvp of grad, jacrev and hessian of J, with identity outputs and None biases:
    the Functions' own backward and jvp, against the same cost in plain torch."""
    dtype = torch.float64
    _, _, X, _ = problem(activation, dtype, d2=2)
    net = ShallowNet(3, 5, 2, activation, "identity", bias=bias, dtype=dtype)
    net.reset_parameters(torch.Generator().manual_seed(3))
    params = {k: p.detach() for k, p in net.named_parameters()}
    Y = torch.randn(X.shape[0], 2, generator=torch.Generator().manual_seed(4), dtype=dtype)

    def ours(p, X, Y):
        return shallow_bce(X, Y, p["W1"], p.get("b1"), p["W2"], p.get("b2"), activation, output="identity")

    def theirs(p, X, Y):
        return plain_squared_error(p, X, Y, activation)

    assert_trees_close(grad(ours)(params, X, Y), grad(theirs)(params, X, Y), dtype)
    per_sample = [
        vmap(grad(lambda p, x, y: cost(p, x[None], y[None])), in_dims=(None, 0, 0))(params, X, Y)
        for cost in (ours, theirs)
    ]
    assert_trees_close(*per_sample, dtype)
    v = {k: torch.ones_like(p) for k, p in params.items()}
    hvps = [jvp(lambda p: grad(cost)(p, X, Y), (params,), (v,))[1] for cost in (ours, theirs)]
    assert_trees_close(*hvps, dtype)
    flat = torch.cat([p.reshape(-1) for p in params.values()])
    shapes = {k: p.shape for k, p in params.items()}

    def unflatten(theta):
        parts = theta.split([s.numel() for s in shapes.values()])
        return {k: t.view(s) for (k, s), t in zip(shapes.items(), parts)}

    assert_close(
        torch.func.hessian(lambda t: ours(unflatten(t), X, Y))(flat),
        torch.func.hessian(lambda t: theirs(unflatten(t), X, Y))(flat),
        dtype,
    )
    logits = jacrev(lambda p: functional_call(net, p, (X,)))(params)
    expected = jacrev(lambda p: PLAIN[activation](X @ p["W1"].T + p.get("b1", 0)) @ p["W2"].T + p.get("b2", 0))
    assert_trees_close(logits, expected(params), dtype)


def test_autocast_with_identity_outputs_and_no_output_bias():
    torch.manual_seed(0)
    net = ShallowNet(3, 4, 2, "tanh", "identity", bias=(True, False))
    X, Y = torch.randn(64, 3), torch.randn(64, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        Z2 = net(X)
        J = net.cost(X, Y)
    assert Z2.dtype == torch.bfloat16 and J.dtype == torch.float32
    expected = ((torch.tanh(X @ net.W1.T + net.b1) @ net.W2.T - Y) ** 2).sum() / 128
    torch.testing.assert_close(J, expected, rtol=0.02, atol=0.02)
    J.backward()
    assert net.W1.grad.dtype == torch.float32 and net.b2 is None
    torch.testing.assert_close(net.W2.grad, torch.autograd.grad(expected, net.W2)[0], rtol=0.05, atol=0.02)
