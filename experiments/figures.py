"""The README's figures: the planar experiment's decision boundary and cost curve, as PNG files in docs/.

pip install '.[experiments]'    # matplotlib
python experiments/figures.py
"""

from pathlib import Path

import matplotlib
import torch
from PIL import Image

from torch_shallow import ShallowNet, TrainConfig, fit, planar
from torch_shallow.board import decision_boundary_image

matplotlib.use("Agg")  # files only, no window
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

OUT = Path(__file__).resolve().parent.parent / "docs"

X, Y = planar()
net = ShallowNet(2, 4)
net.reset_parameters(torch.Generator().manual_seed(0))  # as experiments/planar.py
history = fit(net, X, Y, TrainConfig(tol=0))

image = decision_boundary_image(net, X, Y, size=320)
Image.fromarray((255 * image.permute(1, 2, 0)).round().byte().numpy()).save(OUT / "planar_boundary.png")

fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
ax.plot(history.costs, color="tab:red")
ax.set(
    xlabel="epoch t",
    ylabel="J(θ(t))",
    yscale="log",
    title=f"planar, 4 sigmoid units, lr 1.2: accuracy {100 * history.train_accuracy:.2f}%",
)
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(OUT / "planar_cost.png")
print(f"wrote {OUT / 'planar_boundary.png'} and {OUT / 'planar_cost.png'}")
