"""The planar experiment: 4 sigmoid hidden units learn the deeplearning.ai "flower" by batch gradient descent."""

import torch

from torch_shallow import ShallowNet, TrainConfig, default_run_dir, fit, planar

SEED = 0

X, Y = planar()  # (400, 2), (400, 1)
net = ShallowNet(in_features=2, hidden_features=4)
net.reset_parameters(torch.Generator().manual_seed(SEED))
config = TrainConfig(log_dir=default_run_dir("planar"))  # lr 1.2, 10,000 epochs
history = fit(net, X, Y, config, hparams={"dataset": "planar", "seed": SEED})

print(f"planar: {history.summary()}")
print(f"TensorBoard: tensorboard --logdir {config.log_dir.parent}")
