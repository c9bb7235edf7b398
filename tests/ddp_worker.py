"""Run by tests/test_distributed.py under torchrun (2 gloo processes); not a test itself.

Each rank saves, to ``<out>/rank<r>.pt``: the gradients of one DDP step on a batch of
5 samples (shards of 3 and 2) and of 1 sample (shards of 1 and 0), and the weights and
histories of a teacher and an augmented, partly unlabelled student trained on 129 digits in batches of 64
(the last batch holds one sample: rank 1's shard of it is empty). The test computes
the same things in one process and compares. Then it runs ``python -m skdtutor`` with
the remaining arguments (the cache folder must be ``<out>/cache``) twice, the second time
writing ``<out>/again.csv``, with the cache entries' times in between in
``<out>/entries.json`` (one torchrun start for all this: each start costs seconds).
"""
import json
import sys
from pathlib import Path

import torch

from skdtutor import distributed, train
from skdtutor.__main__ import main
from skdtutor.losses import CE, KD

import ddp_cases

out = sys.argv[1]
torch.set_num_threads(1)
with distributed.session("cpu"):
    grads = {}
    for n in ddp_cases.STEP_SIZES:
        model, x, y = ddp_cases.step_case(n)
        net = distributed.wrap(model, torch.device("cpu"))
        lo, hi = distributed.shard_bounds(0, n)
        logits = net(x[lo:hi])
        loss, _ = distributed.shard_loss(lambda: CE()(logits, None, y[lo:hi]), logits, hi - lo, n)
        loss.backward()
        grads[n] = [p.grad.clone() for p in model.parameters()]
    def touch():  # did an earlier rank's turn come first?
        seen = Path(out, "marker").exists()
        Path(out, "marker").touch()
        return seen

    def fail_on_rank0():
        if distributed.rank() == 0:
            raise FileNotFoundError("no files here")
        return "loaded"

    saw_marker = distributed.in_turn(touch)
    try:
        failure = distributed.in_turn(fail_on_rank0)
    except FileNotFoundError as exc:
        failure = f"raised {exc}"
    data, teacher, student = ddp_cases.run_case()
    t_hist = train.train_teacher(teacher, data, **ddp_cases.TRAIN)
    s_hist = train.distill(student, teacher, data, KD(T=4.0), augment=ddp_cases.noise,
                           labelled=ddp_cases.LABELLED, **ddp_cases.TRAIN)
    torch.save({"grads": grads, "teacher": teacher.state_dict(), "student": student.state_dict(),
                "teacher_rows": t_hist.rows, "student_rows": s_hist.rows, "world": distributed.world_size(),
                "saw_marker": saw_marker, "failure": failure},
               f"{out}/rank{distributed.rank()}.pt")
if len(sys.argv) > 2:  # the CLI, twice: the second run finds everything in the cache
    cli = sys.argv[2:]
    if main(cli) != 0:
        sys.exit(1)
    if distributed.is_rank0():
        json.dump({e.name: e.stat().st_mtime_ns for e in Path(out, "cache").iterdir()},
                  open(f"{out}/entries.json", "w"))
    sys.exit(main([*cli, "--csv", f"{out}/again.csv"]))
