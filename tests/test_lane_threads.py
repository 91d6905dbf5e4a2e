"""A lane's thread share: written by the pipeline parent, applied by the child's loops between steps."""

from __future__ import annotations

import os

import torch

from groundwork import lane_threads
from groundwork.lane_threads import ENV, follow_lane_threads, write_lane_threads


def test_a_changed_share_is_applied_once_and_nothing_happens_outside_a_lane(tmp_path, monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(ENV, raising=False)
        assert follow_lane_threads() is None
        share = tmp_path / "lane-2.threads"
        monkeypatch.setenv(ENV, str(share))
        assert follow_lane_threads() is None  # not written yet
        write_lane_threads(share, 1)
        assert follow_lane_threads() == 1 and torch.get_num_threads() == 1
        assert follow_lane_threads() is None  # unchanged since: one stat, nothing else
        write_lane_threads(share, 2)
        os.utime(share, (1, 1))  # a new modification time even within the file system's clock resolution
        assert follow_lane_threads() == 2 and torch.get_num_threads() == 2
        share.write_text("two\n", encoding="utf-8")
        os.utime(share, (3, 3))
        assert follow_lane_threads() is None and torch.get_num_threads() == 2  # a bad file changes nothing
        assert not list(tmp_path.glob("*.partial"))
    finally:
        lane_threads._seen.clear()
        torch.set_num_threads(before)


def test_when_a_lane_ends_the_parent_gives_its_cores_to_the_lanes_still_running(tmp_path, monkeypatch):
    from groundwork.recipe import load_recipe
    from parley import pipeline_lanes

    class Child:
        """A lane child that exits after a set number of polls and notes the share it could read each time."""

        made: list = []

        def __init__(self, command, stdout, stderr, env):  # noqa: ANN001 - subprocess.Popen's signature
            self.share_file, self.seen, self.polls, self.returncode = env[ENV], [], 0, None
            self.exit_after = (1, 4)[len(Child.made)]
            Child.made.append(self)

        def poll(self):  # noqa: ANN201
            self.seen.append(open(self.share_file, encoding="utf-8").read().strip())
            self.polls += 1
            if self.polls > self.exit_after:
                self.returncode = 0
            return self.returncode

    monkeypatch.setattr(pipeline_lanes.subprocess, "Popen", Child)
    monkeypatch.setattr(pipeline_lanes.os, "cpu_count", lambda: 2)
    recipe = load_recipe("configs/smoke.yaml", [f"run.output_dir={tmp_path}"])
    said: list[str] = []
    pipeline_lanes.run_lanes(recipe, [["sft"], ["risk"]], [], said.append, poll_s=0.0)
    first, second = Child.made
    assert set(first.seen) == {"1"}
    raised = second.seen.index("2")  # one core each while both ran, both cores once the first had exited
    assert raised == first.exit_after + 1 and set(second.seen[raised:]) == {"2"}
    assert "lanes running: 1, now 2 thread(s) each" in said
    assert not list(tmp_path.rglob("lane-*.threads"))
