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


# Every user mistake: exit status 2, one line naming the problem, no traceback, and nothing
# trained (the teacher would be the first thing to train).
@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the arguments were validated")

    monkeypatch.setattr("skdtutor.studies.get_teacher", refuse)


@pytest.mark.parametrize("extra,needle", [
    (["--temperatures", "1e-40"], "TEMPERATURE_RANGE"),
    (["--temperatures", "1e6"], "TEMPERATURE_RANGE"),
    (["--multiplier", "1e300"], "MULTIPLIER_RANGE"),
    (["--gamma", "2", "--methods", "kd@dice"], "gamma"),          # only kd@dice uses it
    (["--dice-temperatures", "1e-40", "--methods", "kd@dice"], "temperature"),
    (["--device", "foo"], "unknown device"),
    (["--seeds", "0,0,0"], "more than once"),
    (["--seeds=-1,2"], "integers >= 0"),
    (["--seeds", "0,x"], "comma-separated integers"),
    (["--teacher-epochs", "0"], "integer >= 1"),
    (["--teacher-epochs", "1000000000000"], "limit of 10000"),
    (["--student-epochs", "-3"], "integer >= 1"),
    (["--student-width", "0"], "integer >= 1"),
    (["--teacher", "vgg"], "unknown model"),
    (["--threads", "0"], "integer >= 1"),
    (["--cache-dir", "{afile}"], "is a file, not a folder"),
    (["--cache-dir", "{afile}/sub"], "not writable"),
    (["--csv", "{tmp}"], "is a folder"),
    (["--csv", "{tmp}/missing/runs.csv"], "does not exist"),
])
@pytest.mark.parametrize("command", ["compare", "results"])
def test_every_user_mistake_is_one_line_and_status_2_before_training(capsys, tmp_path, no_training,
                                                                     command, extra, needle):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    extra = [e.format(afile=afile, tmp=tmp_path) for e in extra]
    if command == "results" and extra[0] in ("--teacher", "--student-width"):
        extra = ["--methods", "bogus"]  # options of compare only; another mistake instead
        needle = "unknown method"
    with pytest.raises(SystemExit) as info:
        code = main([command, "--dataset", "digits", *extra])
        raise SystemExit(code)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root can write to any folder")
def test_an_unwritable_cache_folder_is_refused(capsys, tmp_path, no_training):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert main(["compare", "--dataset", "digits", "--cache-dir", str(folder / "c")]) == 2
    finally:
        folder.chmod(0o700)
    assert "not writable" in capsys.readouterr().err


def test_results_validates_every_dataset_before_the_first_trains(capsys, no_training):
    # mnist's data would be looked for only later; its bad epochs are found first
    assert main(["results", "--dataset", "digits,mnist1d", "--gamma", "1.5"]) == 2
    assert "gamma" in capsys.readouterr().err


def test_a_mistake_in_a_real_process_has_no_traceback(tmp_path):
    proc = run_cli("compare", "--dataset", "digits", "--device", "foo")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m skdtutor compare: error: unknown device 'foo'; use 'auto', 'cpu', 'cuda' or 'cuda:N'"]


# The light parser: `--help` never imports torch, and its names cannot drift from the package's.

@pytest.mark.parametrize("args", [["--help"], ["compare", "--help"], ["results", "--help"]])
def test_help_imports_no_torch(args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "skdtutor", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "skdtutor.cli_spec" in imported  # -X importtime did report this run's imports
    heavy = {m for m in imported if m.split(".")[0] in ("torch", "numpy", "pandas", "matplotlib")}
    assert not heavy, sorted(heavy)[:5]


def test_cli_names_equal_the_package_registries():
    from skdtutor import cli_spec, config, data, losses, studies

    assert cli_spec.METHOD_NAMES == tuple(losses.METHODS)
    assert cli_spec.KD_AT_DICE == studies.KD_AT_DICE
    assert cli_spec.CLI_METHODS == (*losses.METHODS, studies.KD_AT_DICE)
    assert cli_spec.DATASET_NAMES == tuple(data.DATASETS)
    assert cli_spec.OFFLINE_DATASET_NAMES == tuple(data.OFFLINE_DATASETS)
    assert cli_spec.MAX_EPOCHS == config.MAX_EPOCHS
    assert cli_spec.MULTIPLIER_RANGE == tuple(losses.MULTIPLIER_RANGE)


def test_importing_the_losses_loads_no_plotting_or_tables():
    """``import skdtutor.losses`` (issue 14): torch only; plotting and pandas load when used
    (tqdm is not checked: torch itself imports it)."""
    import subprocess
    import sys

    code = ("import sys, skdtutor.losses; "
            "print(' '.join(m for m in ('matplotlib', 'seaborn', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
