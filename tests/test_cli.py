"""Tests of the command line (`python -m skdtutor`): help text and argument validation only."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skdtutor.__main__ import build_parser, main

REPO = Path(__file__).resolve().parents[1]
OPTIONS = ["--dataset", "--methods", "--temperatures", "--seeds", "--csv", "--teacher", "--student",
           "--gamma", "--multiplier", "--device", "--root", "--cache-dir", "--no-cache", "--sequential"]


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "skdtutor", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)


def test_top_level_help():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "compare" in proc.stdout
    assert "usage" in proc.stdout.lower()


def test_compare_help_mentions_every_option():
    proc = run_cli("compare", "--help")
    assert proc.returncode == 0, proc.stderr
    for option in OPTIONS:
        assert option in proc.stdout, option
    # the method names and offline datasets are spelled out
    for word in ("ce", "kd", "skd", "dice", "digits", "mnist1d"):
        assert word in proc.stdout


def test_bad_method_exits_nonzero_with_message():
    proc = run_cli("compare", "--methods", "kd,bogus", "--dataset", "digits")
    assert proc.returncode != 0
    assert "bogus" in proc.stderr
    assert "--methods" in proc.stderr
    assert "Traceback" not in proc.stderr


# In-process checks of the same parser (no interpreter start-up per case).

@pytest.mark.parametrize("argv,needle", [
    (["compare", "--methods", "nope"], "unknown method"),
    (["compare", "--methods", ","], "unknown method"),
    (["compare", "--temperatures", "0,1"], "temperatures"),
    (["compare", "--temperatures", "-2"], "temperatures"),
    (["compare", "--temperatures", "a,b"], "comma-separated numbers"),
    (["compare", "--seeds", "0"], "--seeds"),
    (["compare", "--dataset", "imagenet"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_exit_with_usage_error(capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert needle in err


def test_parser_parses_good_arguments():
    args = build_parser().parse_args(["compare", "--dataset", "digits", "--methods", "KD, skd,dice",
                                      "--temperatures", "1,2.5,16", "--seeds", "2",
                                      "--csv", "out.csv", "--sequential", "--no-cache"])
    assert args.dataset == "digits"
    assert args.methods == ["kd", "skd", "dice"]
    assert args.temperatures == [1.0, 2.5, 16.0]
    assert args.seeds == 2
    assert args.csv == "out.csv"
    assert args.sequential and args.no_cache
    assert build_parser().parse_args(["compare", "--seeds", "3,7"]).seeds == [3, 7]


def test_parser_defaults():
    args = build_parser().parse_args(["compare"])
    assert args.dataset == "mnist1d"
    assert args.methods == ["ce", "kd", "skd"]
    assert args.temperatures == [1.0, 4.0, 16.0]
    assert args.seeds == 3
    assert args.csv is None and args.cache_dir is None
