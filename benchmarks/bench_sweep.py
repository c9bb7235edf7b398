"""Stacked sweeps measured against the hardware (issue 15). Not a test: run it by hand.

    python benchmarks/bench_sweep.py --threads 1           # mnist1d, digits; 5 repetitions
    python benchmarks/bench_sweep.py --datasets mnist1d --reps 3 --no-breakdown

``benchmarks/bench_train.py`` runs the same measurement after its own table.
Per dataset it prints one line::

    stacked sweep: <x>x sequential (tiny student), <p>% of float32 matmul peak (default student)

- ``<x>``: 15 tiny students (``TINY``, an MLP 64x1; 5 temperatures x 3 seeds, KD),
  the wall time of 15 sequential ``train.distill`` calls divided by that of one
  ``sweep.distill_sweep`` (same epochs, one evaluation at the end in both).
- ``on every core``: the same two sweeps split over the CPU's cores by
  ``parallel.stacked_sweep`` (as ``run_students`` does; one thread per process), as
  wall-time ratios: tiny sequential / tiny split, default one stack / default split. These
  5-epoch sweeps are split even where ``workers="auto"`` would not split them (fewer than
  ``parallel.MIN_SPLIT_STEPS`` member-steps), to show what a split costs on a short sweep.
- ``<p>``: the same 15 members with the dataset's default student
  (``config.SETTINGS[name].student``) trained by one ``distill_sweep``: the useful
  matmul FLOP/s of the whole call (setup and final evaluation included) divided
  by the FLOP/s of a 2048 x 2048 float32 ``torch.mm`` timed in the same run,
  interleaved with the sweeps (per repetition the fastest of 3 products). Useful FLOPs, per member and training sample::

      sum over Linear layers l of 2 * in_l * out_l * k_l,
      k_l = 3 (forward, input gradient, weight gradient), k_l = 2 for the first layer
      (its input needs no gradient);

  times ``members * train samples * epochs``. Bias adds, activations, the loss, the
  optimizer and the evaluation count as zero useful FLOPs. A 2048^2 mm counts ``2 * 2048**3``.

Every number is the median of ``--reps`` repetitions after one untimed warm-up,
in CPU seconds of this process (``time.process_time``): with one torch thread
that equals the wall time on a quiet machine, and on a shared one it leaves out
the time other processes hold the core (wall times are printed too).
The breakdown first splits a sweep's CPU time into training steps, the final
evaluation and the fixed part (setup, writing the weights back), from three
sweeps of different lengths (:func:`cpu_split`). Then ``where the time goes``
is a torch.profiler run of one sweep: the inclusive time of each top-level
operation, summed by phase (forward matmuls, forward other, backward matmuls,
backward other, loss (forward and backward), optimizer, predictions, indexing/copies,
evaluation, other ops, and Python between operations) as a share of the profiled wall time. The profiler's
own overhead inflates the small operations, and on a busy machine its wall-clock
times include moments when other processes hold the core.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from skdtutor import config, losses, parallel, sweep, train  # noqa: E402
from skdtutor import data as data_mod  # noqa: E402

TINY = config.ModelSpec("mlp", 64, 1)
TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
SEEDS = (0, 1, 2)
GAMMA = 0.9
MATMUL_SIZE = 2048
EPOCHS = 5


def members():
    return [sweep.SweepMember(losses.KD(T=t, gamma=GAMMA), s) for t in TEMPERATURES for s in SEEDS]


def useful_flops_per_sample(model: nn.Module) -> int:
    """The docstring's formula for one member and one training sample (Linear layers only)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    others = [m for m in model.modules() if not list(m.children()) and list(m.parameters(recurse=False))
              and not isinstance(m, nn.Linear)]
    if others:
        raise ValueError(f"FLOP counting knows Linear layers only, got {type(others[0]).__name__}")
    return sum(2 * m.in_features * m.out_features * (2 if i == 0 else 3) for i, m in enumerate(linears))


def matmul_seconds(size=MATMUL_SIZE, tries=3):
    """The fastest of ``tries`` products of two ``size x size`` float32 matrices (after a warm-up),
    in CPU seconds of this process."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(tries):
        t0 = time.process_time()
        torch.mm(a, b)
        best = min(best, time.process_time() - t0)
    return best


def _kw(s):
    t = s.student_train
    return dict(lr=t.lr, batch_size=t.batch_size, device="cpu", progress=False, eval_every=EPOCHS)


def run_sequential(d, logits, spec, s):
    out = []
    for m in members():
        torch.manual_seed(m.seed)
        out.append(train.distill(spec.build(d), logits, d, m.loss, EPOCHS, seed=m.seed, **_kw(s)))
    return out


def run_stacked(d, logits, spec, s):
    return sweep.distill_sweep(lambda: spec.build(d), logits, d, members(), EPOCHS, **_kw(s))


WORKERS = max(1, min(parallel.MAX_AUTO_WORKERS, parallel.available_cores()))  # what "auto" would start


def run_cores(d, logits, spec, s):
    """The same sweep split over the CPU's cores (``parallel.stacked_sweep``, one thread each)."""
    t = s.student_train
    cfg = config.TrainConfig(epochs=EPOCHS, lr=t.lr, batch_size=t.batch_size, device="cpu",
                             eval_every=EPOCHS, threads=1)
    return parallel.stacked_sweep(spec, logits, d, members(), cfg, progress=False, workers=WORKERS)


def teacher_logits(d, s):
    """A briefly trained teacher's cached logits (what the sweeps learn from)."""
    teacher = s.teacher.build(d, seed=0)
    train.train_teacher(teacher, d, 3, lr=s.teacher_train.lr, batch_size=s.teacher_train.batch_size,
                        seed=0, device="cpu", progress=False, eval_every=3)
    return train.compute_teacher_logits(teacher, d, device="cpu")


def measure(name, reps):
    """Median wall times of the contestants, interleaved, and the derived ratios."""
    d, s = data_mod.load(name), config.setting_for(name)
    logits = teacher_logits(d, s)
    jobs = {"tiny_seq": lambda: run_sequential(d, logits, TINY, s),
            "tiny_stacked": lambda: run_stacked(d, logits, TINY, s),
            "default_stacked": lambda: run_stacked(d, logits, s.student, s),
            "tiny_cores": lambda: run_cores(d, logits, TINY, s),
            "default_cores": lambda: run_cores(d, logits, s.student, s),
            "matmul": matmul_seconds}
    times, walls = defaultdict(list), defaultdict(list)
    for rep in range(reps + 1):  # repetition 0 is the warm-up
        keys = list(jobs)[rep % len(jobs):] + list(jobs)[:rep % len(jobs)]
        for key in keys:
            w0, c0 = time.perf_counter(), time.process_time()
            out = jobs[key]()
            if rep:
                times[key].append(out if key == "matmul" else time.process_time() - c0)
                walls[key].append(time.perf_counter() - w0)
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = 2 * MATMUL_SIZE ** 3 / med["matmul"]
    flops = useful_flops_per_sample(s.student.build(d)) * len(members()) * len(d.y_train) * EPOCHS
    return {"dataset": name, "median_s": med, "matmul_gflops": peak / 1e9,
            "median_wall_s": {k: statistics.median(v) for k, v in walls.items()},
            "default_gflops": flops / med["default_stacked"] / 1e9,
            "speedup_tiny": med["tiny_seq"] / med["tiny_stacked"],
            "peak_share": flops / med["default_stacked"] / peak,
            "workers": WORKERS,
            "default": f"{s.student.name} {s.student.width}x{s.student.depth}",
            "train": len(d.y_train), "batch_size": s.student_train.batch_size}


def summary_line(r) -> str:
    return (f"stacked sweep: {r['speedup_tiny']:.1f}x sequential (tiny student), "
            f"{100 * r['peak_share']:.0f}% of float32 matmul peak (default student)")


def print_measurement(r):
    m, w = r["median_s"], r["median_wall_s"]
    print(f"\n{r['dataset']}: 15 students x {EPOCHS} epochs, train {r['train']}, batch {r['batch_size']}; "
          f"tiny = mlp 64x1, default = {r['default']}")
    print(f"  wall s: tiny sequential {w['tiny_seq']:.3f}, tiny stacked {w['tiny_stacked']:.3f}, "
          f"default stacked {w['default_stacked']:.3f}")
    print(f"  CPU s: tiny sequential {m['tiny_seq']:.3f}, stacked {m['tiny_stacked']:.3f}; default stacked "
          f"{m['default_stacked']:.3f} s = {r['default_gflops']:.1f} useful GFLOP/s; "
          f"{MATMUL_SIZE}^2 mm {r['matmul_gflops']:.1f} GFLOP/s")
    print(summary_line(r))
    print(f"on every core ({r['workers']} processes, wall time): {w['tiny_seq'] / w['tiny_cores']:.1f}x "
          f"sequential (tiny student), {w['default_stacked'] / w['default_cores']:.2f}x one stack "
          f"(default student)")


# ------------------------------------------------------------------ where the time goes
def _phase(event) -> str:
    """The phase of a top-level profiler event."""
    name = event.name
    if name == "sweep.evaluate":  # the sweep's record_function around its evaluation
        return "evaluation"
    if name.startswith("autograd::engine::evaluate_function"):
        if "SoftCrossEntropyBackward" in name:  # skdtutor.losses.fused: the loss's own backward
            return "loss"
        return "backward matmuls" if "mmBackward" in name or "TransposedProductBackward" in name \
            else "backward other"
    if name in ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm", "aten::matmul", "aten::linear",
                "_TransposedProduct"):  # the last: skdtutor.stacking's product for a small layer
        return "forward matmuls"
    if name == "SoftCrossEntropy":
        return "loss"
    if name == "aten::max":  # the training accuracy's per-batch predictions
        return "predictions"
    if "fused_adam" in name or "foreach" in name or name == "Optimizer.step":
        return "optimizer"
    if name in ("aten::index_select", "aten::index", "aten::randperm", "aten::expand", "aten::slice",
                "aten::select", "aten::stack", "aten::cat", "aten::view", "aten::reshape", "aten::to",
                "aten::_to_copy", "aten::copy_", "aten::contiguous", "aten::clone"):
        return "indexing/copies"
    if name in ("aten::relu", "aten::relu_", "aten::pad", "aten::constant_pad_nd", "aten::flatten"):
        return "forward other"
    if name.startswith("aten::") and ("softmax" in name or name in (
            "aten::mul", "aten::sub", "aten::div", "aten::sum", "aten::mean", "aten::add",
            "aten::rsub", "aten::nll_loss", "aten::cross_entropy_loss", "aten::exp", "aten::log",
            "aten::neg", "aten::gather", "aten::where", "aten::pow", "aten::nll_loss_nd")):
        return "loss"
    return "other ops (" + name + ")"


def cpu_split(d, logits, spec, s, reps=3):
    """CPU seconds of a sweep's fixed part (setup, write-back), its training steps and one
    evaluation, from three sweeps (fastest of ``reps`` each): 1 epoch and 5 epochs evaluated
    at the end, and 5 epochs evaluated after every epoch."""
    def best(epochs, eval_every):
        kw = {**_kw(s), "eval_every": eval_every}
        fn = lambda: sweep.distill_sweep(lambda: spec.build(d), logits, d, members(), epochs, **kw)  # noqa: E731
        fn()
        times = []
        for _ in range(reps):
            c0 = time.process_time()
            fn()
            times.append(time.process_time() - c0)
        return min(times)

    one, five, five_each = best(1, 1), best(EPOCHS, EPOCHS), best(EPOCHS, 1)
    epoch = (five - one) / (EPOCHS - 1)          # one training epoch, no evaluation
    evaluation = (five_each - five) / (EPOCHS - 1)
    return {"fixed": one - epoch - evaluation, "epoch": epoch, "evaluation": evaluation,
            "total": five}


def breakdown(name, student="default", top=4):
    """Profile one stacked sweep; the inclusive time of each top-level op, by phase."""
    from torch.profiler import ProfilerActivity, profile

    d, s = data_mod.load(name), config.setting_for(name)
    logits = teacher_logits(d, s)
    spec = TINY if student == "tiny" else s.student
    split = cpu_split(d, logits, spec, s)
    steps_per_epoch = -(-len(d.y_train) // s.student_train.batch_size)
    print(f"  CPU-time split, {name} stacked sweep of 15 x {spec.name} {spec.width}x{spec.depth} "
          f"({split['total']:.3f} s): training {EPOCHS} x {split['epoch'] * 1e3:.1f} ms "
          f"({split['epoch'] / steps_per_epoch * 1e6:.0f} us/step, "
          f"{EPOCHS * split['epoch'] / split['total']:.0%}), final evaluation "
          f"{split['evaluation'] * 1e3:.1f} ms ({split['evaluation'] / split['total']:.0%}), "
          f"setup and write-back {split['fixed'] * 1e3:.1f} ms ({split['fixed'] / split['total']:.0%})")
    run_stacked(d, logits, spec, s)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run_stacked(d, logits, spec, s)
        wall = time.perf_counter() - t0
    phases, other = defaultdict(float), defaultdict(float)
    for e in prof.events():
        if e.cpu_parent is not None:
            continue
        phase = _phase(e)
        if phase.startswith("other ops"):
            other[e.name] += e.cpu_time_total
            phase = "other ops"
        phases[phase] += e.cpu_time_total
    steps = EPOCHS * -(-len(d.y_train) // s.student_train.batch_size)
    total_us = wall * 1e6
    spec_s = f"{spec.name} {spec.width}x{spec.depth}"
    print(f"  where the time goes, {name} stacked sweep of 15 x {spec_s} (profiled, {wall:.2f} s, "
          f"{total_us / steps:.0f} us per step):")
    accounted = 0.0
    for phase, us in sorted(phases.items(), key=lambda kv: -kv[1]):
        accounted += us
        extra = ""
        if phase == "other ops":
            extra = " (" + ", ".join(f"{k} {v / steps:.0f}" for k, v in
                                     sorted(other.items(), key=lambda kv: -kv[1])[:top]) + ")"
        print(f"    {phase:<18}{us / steps:8.0f} us/step {us / total_us:6.1%}{extra}")
    rest = max(total_us - accounted, 0.0)
    print(f"    {'Python, between ops':<18}{rest / steps:8.0f} us/step {rest / total_us:6.1%}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="mnist1d,digits", help="comma-separated (default: %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--no-breakdown", action="store_true", help="skip the profiler breakdown")
    a = p.parse_args(argv)
    if a.reps < 1:
        p.error("--reps must be >= 1")
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for name in (n.strip() for n in a.datasets.split(",") if n.strip()):
        r = measure(name, a.reps)
        print_measurement(r)
        if not a.no_breakdown:
            breakdown(name, "default")
            breakdown(name, "tiny")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
