"""Images per second of the ``cifar100-kd`` recipe's training steps, and what 240 epochs take.

    python benchmarks/bench_recipe.py [--device cpu|cuda] [--batches 8] [--threads N]

Times ``--batches`` SGD steps (after two warm-up steps) of the recipe on random
CIFAR-shaped batches: the resnet32x4 teacher trained with cross-entropy, and a resnet8x4
student distilled with KD from it (the teacher's forward per batch included). Prints
images/s and the time of the full recipe (teacher + one student per method, each 240
epochs of 50,000 images) at that rate.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from skdtutor.config import ModelSpec
from skdtutor.losses import make_loss
from skdtutor.recipe import RECIPES
from skdtutor.recipe_steps import autocast_dtype, memory_format, train_step
from skdtutor.steps import resolve_device

TRAIN_IMAGES = 50_000


class _Cifar100:
    input_shape, num_classes = (3, 32, 32), 100


def images_per_s(student: ModelSpec, teacher: ModelSpec | None, method: str, device, batches: int) -> float:
    cfg = RECIPES["cifar100-kd"]
    dtype, layout = autocast_dtype(cfg.amp, device), memory_format(cfg.channels_last, device)
    model = student.build(_Cifar100, seed=0).to(device=device, memory_format=layout).train()
    guide = None
    if teacher is not None:
        guide = teacher.build(_Cifar100, seed=1).to(device=device, memory_format=layout).eval()
        guide.requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(cfg.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (cfg.batch_size,), device=device)
    loss_fn = make_loss(method)

    def step():
        return train_step(model, optimizer, scaler, x, y, loss_fn, teacher=guide, generator=gen,
                          padding=cfg.padding, dtype=dtype, layout=layout)

    for _ in range(2):
        step().item()
    start = time.perf_counter()
    for _ in range(batches):
        loss = step()
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batches * cfg.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = RECIPES["cifar100-kd"]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}, batch {cfg.batch_size}, amp {autocast_dtype(cfg.amp, device)}")
    teacher_rate = images_per_s(cfg.teacher, None, "ce", device, args.batches)
    student_rate = images_per_s(cfg.student, cfg.teacher, "kd", device, args.batches)
    print(f"teacher {cfg.teacher.name} (ce): {teacher_rate:,.1f} images/s")
    print(f"student {cfg.student.name} (kd, teacher forward per batch): {student_rate:,.1f} images/s")
    work = cfg.epochs * TRAIN_IMAGES
    hours_t, hours_s = work / teacher_rate / 3600, work / student_rate / 3600
    print(f"{cfg.epochs} epochs x {TRAIN_IMAGES:,} images: teacher {hours_t:,.1f} h, each student "
          f"{hours_s:,.1f} h; recipe with {len(cfg.methods)} methods {hours_t + len(cfg.methods) * hours_s:,.1f} h "
          f"({(hours_t + len(cfg.methods) * hours_s) / 24:,.1f} days)")


if __name__ == "__main__":
    main()
