"""`import torch_shallow` stays light: code that only needs the network does not pay for TensorBoard, Pillow or
pyarrow, which load when a name that needs them is first used. Each check runs in a fresh interpreter, since this
test process has long imported everything."""

import json
import subprocess
import sys

import torch_shallow

HEAVY = ("tensorboard", "PIL", "pyarrow")

PROBE = """
import json, sys, time
start = time.perf_counter()
import torch
torch_done = time.perf_counter()
import torch_shallow
USE
done = time.perf_counter()
print(json.dumps({
    "torch_s": torch_done - start,
    "torch_shallow_s": done - torch_done,
    "heavy": sorted({name.split(".")[0] for name in sys.modules} & set(%r)),
}))
""" % (HEAVY,)


def probe(use: str = "") -> dict:
    """Import torch, then torch_shallow, then run `use`, in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE.replace("USE", use)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_import_loads_no_tensorboard_pil_or_pyarrow():
    measured = probe()
    # printed, not asserted: the aim is at most 0.1 s beyond `import torch` (-X importtime adds its own cost)
    print(f"import torch: {measured['torch_s']:.3f} s; then import torch_shallow: {measured['torch_shallow_s']:.3f} s")
    assert measured["heavy"] == []


def test_the_lazy_names_load_their_modules_when_used():
    """A run that logs loads TensorBoard and Pillow; data read from CSV or Parquet loads pyarrow."""
    measured = probe(
        "torch_shallow.fit(torch_shallow.ShallowNet(2, 3), *torch_shallow.planar(), "
        "torch_shallow.TrainConfig(max_epochs=1, log_dir=__import__('tempfile').mkdtemp(), progress=False)); "
        "p = __import__('tempfile').mktemp(suffix='.csv'); open(p, 'w').write('a,y\\n1,0\\n2,1\\n'); "
        "torch_shallow.load_csv(p)"
    )
    assert measured["heavy"] == sorted(HEAVY)  # the probe can see them, so their absence above means something


def test_every_public_name_resolves_to_its_module():
    for name in torch_shallow.__all__:
        value = getattr(torch_shallow, name)
        module = getattr(value, "__module__", None)
        if module is not None and module.startswith("torch_shallow."):
            assert getattr(sys.modules[module], name) is value
    assert set(torch_shallow.__all__) <= set(dir(torch_shallow))
