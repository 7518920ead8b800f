"""Mistakes on the command line (draggan/apps/command_line.py): at most two lines on stderr naming what was given
and what is valid, a non-zero exit; keys no config has are refused; the schemas are not choices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from draggan.apps.command_line import command_line_problem
from eval.configs import register_configs

ROOT = Path(__file__).resolve().parents[2]
POINTS = "points=[[32,40,32,44]]"


@pytest.fixture(autouse=True, scope="module")
def schemas():
    register_configs()


@pytest.mark.parametrize("given,first,second", [
    ("drag_method=nope", "drag_method has no option 'nope'", "drag_method is one of: "),  # listed: see below
    ("drag.nope=1", "no key drag.nope", "drag's keys: preset, feature_block"),
    ("+seeds=0", "no key seeds (keys that no config has are refused)", "the config's keys: generator, drag, seed"),
    ("++drag.nope=1", "no key drag.nope (keys that no config has are refused)", "drag's keys: preset"),
    ("drag=drag_schema", "drag has no option 'drag_schema'", "drag is one of: official, paper, recommended"),
    ("lr=0.1", "no key lr", "the config's keys: generator"),
    ("hydra/launcher=nope", "hydra/launcher has no option 'nope'", "hydra/launcher is one of: basic"),
])
def test_a_mistake_is_named_with_what_is_valid(given, first, second):
    problem = command_line_problem("edit", [POINTS, given])
    assert problem is not None and len(problem) == 2, problem
    assert problem[0] == f"{given}: {first}" and problem[1].startswith(second), problem


def test_a_wrong_type_and_an_unreadable_line_are_one_or_two_lines():
    assert command_line_problem("edit", [POINTS, "seed=abc"]) == [
        "seed=abc: Value 'abc' of type 'str' could not be converted to Integer"]
    problem = command_line_problem("edit", ["points=[[1,2"])
    assert len(problem) == 2 and problem[0].startswith("cannot read the command line: ")


@pytest.mark.parametrize("config_name,given", [("edit", "threads=x"), ("edit", "threads=0"), ("gates", "threads=1.5"),
                                               ("train_uclt", "threads=-2")])
def test_a_thread_count_that_is_none_is_refused_before_any_work(config_name, given):
    """scripts/model_gates.py threads=x measured the renderer's speed before it said the setting was wrong."""
    problem = command_line_problem(config_name, [POINTS, given] if config_name == "edit" else [given])
    assert problem == [f"{given}: not a thread count",
                       "threads is auto (the cores this process may use), a whole number >= 1, or null (torch's default)"
                       ], problem
    for good in ("threads=auto", "threads=1", "threads=null"):
        assert command_line_problem(config_name, [POINTS, good] if config_name == "edit" else [good]) is None, good


@pytest.mark.parametrize("argv", [
    [POINTS], [POINTS, "drag=paper", "drag.lr=0.01", "drag_method=draggan"],
    [POINTS, "drag.method_options.l_expected=0.3", "++drag.method_options.d_max=4"],  # an open mapping, by design
    [POINTS, "hydra.run.dir=outputs/x", "hydra/launcher=local"], ["--help", "nope=1"], ["--cfg", "job", POINTS],
    [POINTS, "drag.method=mymethods:Straight", "drag.method_options.step=2"],  # a method of the user's own code
])
def test_good_command_lines_and_hydras_own_flags_pass(argv):
    assert command_line_problem("edit", argv) is None


def test_classes_of_ones_own_code_pass_and_a_wrong_choice_says_how_to_name_them():
    """A user's method or tracker is a `module:Class` value of a key (imported when the command runs), never a
    choice of the group; the check lets it through unimported and points to it when a choice is wrong."""
    assert command_line_problem("evaluate", ["drag_method=draggan", "tracker.name=mytrackers:Mine"]) is None
    assert command_line_problem("evaluate", ["drag.method=no_such_module_here:Straight"]) is None
    problem = command_line_problem("edit", [POINTS, "drag_method=mymethods:Straight"])
    assert problem[1].endswith("; your own: drag.method=<module>:<Class>"), problem
    listed = problem[1].removeprefix("drag_method is one of: ").split(";")[0].split(", ")
    assert {"draggan", "freedrag", "stabledrag", "uclt"} <= set(listed), problem  # (and what other tests registered)
    problem = command_line_problem("evaluate", ["tracker=mine"])
    assert problem == ["tracker=mine: tracker has no option 'mine'", problem[1]], problem
    assert problem[1].startswith("tracker is one of: ") and problem[1].endswith("; your own: tracker.name=<module>:<Class>")


def test_adding_a_config_group_is_what_plus_is_for_and_a_sweep_is_checked_by_its_first_value():
    assert command_line_problem("evaluate", ["+experiment=table1"]) is None
    assert command_line_problem("evaluate", ["-m", "shard=0/2,1/2", "n_pairs=2"]) is None
    problem = command_line_problem("evaluate", ["-m", "drag_method=draggan,nope"])
    assert problem is None  # only the first value is checked here; Hydra reports the failing job
    problem = command_line_problem("evaluate", ["-m", "tracker=nope,dis"])
    assert problem[0] == "tracker=nope: tracker has no option 'nope'"


@pytest.mark.parametrize("given,names", [("drag_method=nope", "drag_method=nope"), ("drag.nope=1", "drag.nope"),
                                         ("+seeds=0", "+seeds=0"), ("rollback_to=5", "rollback_to=5")])
def test_the_issues_four_command_lines_fail_in_at_most_two_lines(given, names, tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "drag.py"), POINTS, given, "progress=false"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and 1 <= len(lines) <= 2, proc.stderr
    assert lines[0].startswith("drag.py: error: ") and names in lines[0], lines
    assert not (tmp_path / "outputs").exists() or given == "rollback_to=5"  # refused before any work


def test_the_schemas_are_not_offered_as_choices(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "drag: official, paper, recommended" in groups and "_schema" not in groups, groups


def test_a_script_with_its_own_arguments_fails_in_one_line_too(tmp_path):
    """scripts/report.py (argparse) on a folder without runs: one line naming the folder, exit code 1."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(tmp_path / "nothing")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"report.py: error: no results.json under {tmp_path / 'nothing'}: is it a folder of scripts/evaluate.py runs?"]
