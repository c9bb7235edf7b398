"""The cases that tests/ddp_worker.py runs under torchrun and tests/test_distributed.py
runs in one process (shared, so both sides build exactly the same thing)."""
import torch

from skdtutor import data as data_mod
from skdtutor.config import ModelSpec

STEP_SIZES = (5, 1)  # one DDP step: shards of 3 and 2 samples, then of 1 and 0 (an empty shard)
# 129 samples in batches of 64: 64, 64, 1; over 2 ranks the last batch's shards are 1 and 0
LABELLED = torch.arange(129) % 3 != 0  # a third of the samples unlabelled (only the KD term)
TRAIN = dict(epochs=2, batch_size=64, lr=3e-3, seed=0, device="cpu", progress=False)


def step_case(n: int):
    """A small MLP and a batch of ``n`` samples (fixed seeds)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def run_case():
    """129 training digits, a CNN teacher and an MLP student (fixed seeds)."""
    data = data_mod.load("digits").subset(torch.arange(129))
    return data, ModelSpec("cnn", 4).build(data, seed=0), ModelSpec("mlp", 16, 1).build(data, seed=1)


def noise(x, generator):
    """An augmentation that draws from the trainer's generator (one draw per global batch)."""
    return x + 0.1 * torch.randn(x.shape, generator=generator)
