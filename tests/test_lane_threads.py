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
