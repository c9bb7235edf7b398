"""Training-speed benchmark of skdtutor.train (issue 7). Not a test: run it by hand.

    python benchmarks/bench_train.py                 # mnist1d and digits, 5 repetitions
    python benchmarks/bench_train.py --reps 7 --threads 2 --json bench.json
    python benchmarks/bench_train.py --profile       # plus where the time goes (torch.profiler)

Everything runs in one process on one machine, interleaved (A B C ... A B C ...)
so that slow drifts of the machine hit every contestant alike; each number is the
median of ``--reps`` repetitions after one untimed warm-up. Run it on a quiet
machine: the load average is printed at the start and the end, and a warning
appears when it exceeds the number of cores.

Contestants, on each dataset (a CNN teacher and an MLP student with the book's
settings for that dataset, KD loss with T=4, gamma=0.9, the same epochs, batch
size and learning rate everywhere):

A  the loop of the official PyTorch knowledge-distillation tutorial: a
   DataLoader over a TensorDataset of the training split (shuffle=True), the
   teacher's forward pass on every batch under ``torch.no_grad()``, the
   tutorial's soft-target loss (``sum(p_t * (log p_t - log p_s)) / batch * T**2``)
   plus cross-entropy, default Adam, and ``running_loss += loss.item()`` every step.
B  ``skdtutor.train.distill`` with the teacher's logits cached once per dataset
   (``TeacherLogits``, as the experiment runner keeps them) and one evaluation at
   the end (``eval_every=epochs``); its time includes that evaluation.
C  the ideal minimal loop: tensors already in memory, cached teacher logits,
   index batches, the library's KD loss object, the same (fused) Adam as B and
   nothing else. The practical floor on this machine. C0 is the same loop with
   PyTorch's default Adam (for reference).
T  computing the teacher's logits once (the one-time cost that B and C skip).
D  15 students (5 temperatures x 3 seeds): sequential ``distill`` calls versus
   one ``distill_sweep`` (what ``skdtutor.runs.run_students`` runs for stackable
   students). Steps/s counts member-steps (students x optimizer steps).

Targets (issue 7, on a 2-core CPU): A/B >= 1.5, B/C <= 1.15, D seq/batched >= 5.

Then, per dataset, the stacked sweep against the hardware (issue 15; see
``benchmarks/bench_sweep.py`` for the definitions and the FLOP formula), one line::

    stacked sweep: <x>x sequential (tiny student), <p>% of float32 matmul peak (default student)

and (unless ``--no-breakdown``) where a stacked sweep's time goes.
``--stacked-only`` runs just that part. Targets (issue 15): x >= 10, p >= 60.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from skdtutor import data as data_mod  # noqa: E402
from skdtutor import config, losses, sweep, train  # noqa: E402

import bench_sweep  # noqa: E402 - benchmarks/bench_sweep.py, next to this file

TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0)
SEEDS = (0, 1, 2)
T, GAMMA = 4.0, 0.9


# ---------------------------------------------------------------------------- contestants
def run_a(d, teacher, make_student, epochs, batch_size, lr, seed):
    """The PyTorch tutorial's loop (train_knowledge_distillation), with our T and weights."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    student = make_student()
    loader = DataLoader(TensorDataset(d.x_train, d.y_train), batch_size=batch_size, shuffle=True)
    ce_loss = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    student.train()
    for _ in range(epochs):
        running_loss = 0.0
        for inputs, labels in loader:
            optimizer.zero_grad()
            with torch.no_grad():
                teacher_logits = teacher(inputs)
            student_logits = student(inputs)
            soft_targets = F.softmax(teacher_logits / T, dim=-1)
            soft_prob = F.log_softmax(student_logits / T, dim=-1)
            soft_targets_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) \
                / soft_prob.size()[0] * (T ** 2)
            label_loss = ce_loss(student_logits, labels)
            loss = GAMMA * soft_targets_loss + (1 - GAMMA) * label_loss
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    return student


def run_b(d, logits, make_student, epochs, batch_size, lr, seed):
    torch.manual_seed(seed)
    student = make_student()
    train.distill(student, logits, d, losses.KD(T=T, gamma=GAMMA), epochs, lr=lr,
                  batch_size=batch_size, seed=seed, device="cpu", progress=False, eval_every=epochs)
    return student


def run_c(d, logits, make_student, epochs, batch_size, lr, seed, fused=True):
    torch.manual_seed(seed)
    student = make_student()
    optimizer = (torch.optim.Adam(student.parameters(), lr=lr, fused=True) if fused
                 else torch.optim.Adam(student.parameters(), lr=lr))
    loss_fn = losses.KD(T=T, gamma=GAMMA)
    x, y, t = d.x_train, d.y_train, logits.train
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=generator).split(batch_size):
            loss = loss_fn(student(x[idx]), t[idx], y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return student


def run_t(d, teacher):
    return train.compute_teacher_logits(teacher, d, device="cpu")


def sweep_members():
    return [sweep.SweepMember(losses.KD(T=temp, gamma=GAMMA), seed)
            for temp in TEMPERATURES for seed in SEEDS]


def run_d_sequential(d, logits, make_student, epochs, batch_size, lr):
    out = []
    for m in sweep_members():
        torch.manual_seed(m.seed)
        student = make_student()
        out.append(train.distill(student, logits, d, m.loss, epochs, lr=lr, batch_size=batch_size,
                                 seed=m.seed, device="cpu", progress=False, eval_every=epochs))
    return out


def run_d_batched(d, logits, make_student, epochs, batch_size, lr):
    return sweep.distill_sweep(make_student, logits, d, sweep_members(), epochs, lr=lr,
                               batch_size=batch_size, device="cpu", progress=False,
                               eval_every=epochs)


@torch.no_grad()
def test_acc(model, d):
    model.eval()
    return (model(d.x_test).argmax(-1) == d.y_test).float().mean().item()


# ------------------------------------------------------------------------------- harness
def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


def machine_info(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "threads_arg": threads,
            "cpu_capability": getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")(),
            "python": platform.python_version(), "platform": platform.platform()}


def load_average():
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return None


def _setup(name):
    """The dataset, its default setting, steps per epoch, a student factory and an untrained teacher."""
    d = data_mod.load(name)
    s = config.setting_for(name)
    n_steps = -(-len(d.y_train) // s.student_train.batch_size)

    def make_student():
        return s.student.build(d)

    teacher = s.teacher.build(d, seed=0)
    return d, s, n_steps, make_student, teacher


def bench_dataset(name, reps, epochs, sweep_epochs, teacher_epochs):
    d, s, n_steps, make_student, teacher = _setup(name)
    train.train_teacher(teacher, d, teacher_epochs, lr=s.teacher_train.lr,
                        batch_size=s.teacher_train.batch_size, seed=0,
                        device="cpu", progress=False, eval_every=teacher_epochs)
    teacher.eval()
    logits = train.compute_teacher_logits(teacher, d, device="cpu")
    args = (epochs, s.student_train.batch_size, s.student_train.lr)
    contestants = {
        "A": lambda: run_a(d, teacher, make_student, *args, seed=0),
        "B": lambda: run_b(d, logits, make_student, *args, seed=0),
        "C": lambda: run_c(d, logits, make_student, *args, seed=0),
        "C0": lambda: run_c(d, logits, make_student, *args, seed=0, fused=False),
        "T": lambda: run_t(d, teacher),
        "Dseq": lambda: run_d_sequential(d, logits, make_student, sweep_epochs, s.student_train.batch_size, s.student_train.lr),
        "Dbat": lambda: run_d_batched(d, logits, make_student, sweep_epochs, s.student_train.batch_size, s.student_train.lr),
    }
    wall = {k: [] for k in contestants}
    cpu = {k: [] for k in contestants}
    results = {}
    for rep in range(reps + 1):  # repetition 0 is the warm-up
        keys = list(contestants)
        keys = keys[rep % len(keys):] + keys[:rep % len(keys)]  # rotate the order
        for key in keys:
            w, c, res = timed(contestants[key])
            if rep:
                wall[key].append(w)
                cpu[key].append(c)
            results[key] = res
    steps = {"A": epochs * n_steps, "B": epochs * n_steps, "C": epochs * n_steps,
             "C0": epochs * n_steps, "T": None,
             "Dseq": len(sweep_members()) * sweep_epochs * n_steps,
             "Dbat": len(sweep_members()) * sweep_epochs * n_steps}
    acc = {k: test_acc(results[k], d) for k in ("A", "B", "C", "C0")}
    seq_acc = [h.final["test_acc"] for h in results["Dseq"]]
    bat_acc = [h.final["test_acc"] for h in results["Dbat"]]
    acc["Dseq"] = statistics.mean(seq_acc)
    acc["Dbat"] = statistics.mean(bat_acc)
    gaps = [max((a - b).abs().max().item()
                for a, b in zip(hs.model.state_dict().values(), hb.model.state_dict().values()))
            for hs, hb in zip(results["Dseq"], results["Dbat"])]
    med = {k: statistics.median(v) for k, v in wall.items()}
    return {
        "dataset": name, "train": len(d.y_train), "batch_size": s.student_train.batch_size,
        "steps_per_epoch": n_steps, "epochs": epochs, "sweep_epochs": sweep_epochs,
        "teacher": f"{s.teacher.name}(width={s.teacher.width})",
        "student": f"{s.student.name}(width={s.student.width}, depth={s.student.depth})",
        "wall": wall, "cpu": cpu, "median_wall": med,
        "median_cpu": {k: statistics.median(v) for k, v in cpu.items()},
        "steps": steps, "test_acc": acc, "sweep_weight_gaps": gaps,
        "sweep_acc_gaps": [abs(a - b) for a, b in zip(seq_acc, bat_acc)],
        "ratios": {"A/B": med["A"] / med["B"], "B/C": med["B"] / med["C"],
                   "Dseq/Dbat": med["Dseq"] / med["Dbat"]},
    }


LABELS = {"A": "A  tutorial loop (DataLoader, teacher fwd, .item())",
          "B": "B  skdtutor.train.distill",
          "C": "C  minimal loop (fused Adam, as B)",
          "C0": "C0 minimal loop (default Adam)",
          "T": "T  teacher logits, once per dataset",
          "Dseq": "D  15 students, sequential distill",
          "Dbat": "D  15 students, distill_sweep"}


def print_report(info, runs, load_start, load_end):
    print(f"machine: {info['cpu']}, {info['logical_cores']} logical cores, "
          f"SIMD {info['cpu_capability']}, torch {info['torch']}, torch threads {info['torch_threads']}, "
          f"Python {info['python']}")
    print(f"load average (1, 5, 15 min): start {load_start}, end {load_end}")
    if load_start and max(load_start[0], load_end[0]) > (info["logical_cores"] or 1):
        print("WARNING: the machine was busy (load average above the core count): the timings "
              "are noisy; rerun on a quiet machine")
    for r in runs:
        print()
        print(f"{r['dataset']}: teacher {r['teacher']}, student {r['student']}, train {r['train']}, "
              f"batch {r['batch_size']} ({r['steps_per_epoch']} steps/epoch), {r['epochs']} epochs "
              f"(sweep: {r['sweep_epochs']}), median of {len(r['wall']['A'])} repetitions")
        print(f"{'run':<52}{'median s':>10}{'steps/s':>10}{'min s':>9}{'cpu s':>9}{'test acc':>10}")
        for key, label in LABELS.items():
            med = r["median_wall"][key]
            steps = r["steps"][key]
            rate = f"{steps / med:10.0f}" if steps else f"{'-':>10}"
            acc = r["test_acc"].get(key)
            acc_s = f"{acc:10.3f}" if acc is not None else f"{'-':>10}"
            print(f"{label:<52}{med:10.3f}{rate}{min(r['wall'][key]):9.3f}"
                  f"{r['median_cpu'][key]:9.3f}{acc_s}")
        ra = r["ratios"]
        ok = {"A/B": ra["A/B"] >= 1.5, "B/C": ra["B/C"] <= 1.15, "Dseq/Dbat": ra["Dseq/Dbat"] >= 5}
        print(f"ratios: A/B = {ra['A/B']:.2f} (target >= 1.5: {'met' if ok['A/B'] else 'MISSED'}), "
              f"B/C = {ra['B/C']:.2f} (target <= 1.15: {'met' if ok['B/C'] else 'MISSED'}), "
              f"D seq/batched = {ra['Dseq/Dbat']:.2f} (target >= 5: "
              f"{'met' if ok['Dseq/Dbat'] else 'MISSED'})")
        gaps, acc_gaps = r["sweep_weight_gaps"], r["sweep_acc_gaps"]
        print(f"sweep vs sequential runs: {sum(g < 1e-5 for g in gaps)}/{len(gaps)} students within "
              f"1e-5 of their sequential weights (largest difference {max(gaps):.1e}); test accuracy "
              f"identical for {sum(g == 0 for g in acc_gaps)}/{len(acc_gaps)} (largest difference "
              f"{max(acc_gaps):.3f}). Over many float32 epochs, last-bit differences can grow for "
              f"some seeds, as with any change of kernel; tests/test_train.py checks the arithmetic "
              f"in float64.")


def profile_report(name, epochs, sweep_epochs, rows=15):
    """Where the time goes in B and in the batched sweep: self CPU time per optimizer step."""
    from torch.profiler import ProfilerActivity, profile

    d, s, n_steps, make_student, teacher = _setup(name)
    logits = train.compute_teacher_logits(teacher, d, device="cpu")
    jobs = {"B (distill)": (lambda: run_b(d, logits, make_student, epochs, s.student_train.batch_size, s.student_train.lr, 0),
                            epochs * n_steps),
            "C (minimal loop)": (lambda: run_c(d, logits, make_student, epochs, s.student_train.batch_size, s.student_train.lr, 0),
                                 epochs * n_steps),
            "D batched (distill_sweep x15)": (
                lambda: run_d_batched(d, logits, make_student, sweep_epochs, s.student_train.batch_size, s.student_train.lr),
                sweep_epochs * n_steps)}
    for label, (fn, steps) in jobs.items():
        fn()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        print(f"\nprofile {name} {label}: {total / steps:.0f} us self CPU per optimizer step "
              f"(profiler overhead included)")
        print(f"  {'op':<48}{'calls/step':>11}{'us/step':>9}{'share':>7}")
        for e in events[:rows]:
            print(f"  {e.key[:48]:<48}{e.count / steps:11.2f}{e.self_cpu_time_total / steps:9.1f}"
                  f"{e.self_cpu_time_total / total:7.1%}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist1d,digits", help="comma-separated (default: %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per contestant (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of A, B, C (default: %(default)s)")
    p.add_argument("--sweep-epochs", type=int, default=10, help="epochs of each D student (default: %(default)s)")
    p.add_argument("--teacher-epochs", type=int, default=10,
                   help="epochs of the teacher trained once per dataset (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads for the whole run; 0 keeps torch's default "
                        "(default: %(default)s, what the book's chapters use)")
    p.add_argument("--profile", action="store_true", help="also print a torch.profiler breakdown")
    p.add_argument("--stacked-only", action="store_true",
                   help="only the stacked-sweep line (issue 15) and its breakdown, not A-D")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip where the stacked sweep's time goes (torch.profiler)")
    p.add_argument("--json", help="write the raw timings to this file")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 reps, 2 epochs, digits only")
    a = p.parse_args(argv)
    if a.quick:
        a.reps, a.epochs, a.sweep_epochs, a.teacher_epochs, a.datasets = 2, 2, 2, 2, "digits"
    if a.reps < 1:
        p.error("--reps must be >= 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    info = machine_info(a.threads)
    names = [name.strip() for name in a.datasets.split(",") if name.strip()]
    load_start = load_average()
    runs = [] if a.stacked_only else [bench_dataset(name, a.reps, a.epochs, a.sweep_epochs,
                                                    a.teacher_epochs) for name in names]
    stacked = [bench_sweep.measure(name, a.reps) for name in names]
    load_end = load_average()
    print_report(info, runs, load_start, load_end)
    print(f"\nstacked sweeps against the hardware (issue 15; targets: >= 10x, >= 60%), "
          f"median of {a.reps} repetitions:")
    for r in stacked:
        bench_sweep.print_measurement(r)
        if not a.no_breakdown:
            bench_sweep.breakdown(r["dataset"], "default")
            bench_sweep.breakdown(r["dataset"], "tiny")
    if a.profile and not a.stacked_only:
        for name in names:
            profile_report(name, a.epochs, a.sweep_epochs)
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "load_start": load_start,
                                            "load_end": load_end, "runs": runs,
                                            "stacked": stacked}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
