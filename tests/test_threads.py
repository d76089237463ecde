"""The default CPU thread count (trm/threads.py): free cores unless the user chose."""

import pytest

from trm.errors import UserError
from trm.threads import chosen_threads


def test_free_cores_when_nobody_chose():
    assert chosen_threads({}, cores=2, load=0.0)[0] == 2
    assert chosen_threads({}, cores=2, load=1.1)[0] == 1  # another process keeps one core busy
    assert chosen_threads({}, cores=2, load=7.0)[0] == 1  # never fewer than one
    assert chosen_threads({"LOCAL_WORLD_SIZE": "2"}, cores=16, load=0.0)[0] == 8  # shared among local processes


def test_the_users_choice_wins():
    assert chosen_threads({"TRM_NUM_THREADS": "3"}, cores=2, load=5.0)[0] == 3
    assert chosen_threads({"OMP_NUM_THREADS": "4"}, cores=2, load=0.0)[0] is None  # torch honours it itself
    for bad in ("0", "two", "-1"):
        with pytest.raises(UserError, match="TRM_NUM_THREADS"):
            chosen_threads({"TRM_NUM_THREADS": bad})


def test_busy_cores_reads_proc_stat_over_an_interval(tmp_path, monkeypatch):
    from trm import threads

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 ...\n")
    # the interval: 100 busy of 200 jiffies, i.e. half of two cores
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: stat.write_text("cpu  150 0 150 900 0 0 0 0 0 0\n"))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    busy = threads.busy_cores(path=str(stat))
    assert busy == 1.0
    assert threads.chosen_threads({}, cores=2, load=busy)[0] == 1


def test_busy_cores_falls_back_to_the_load_average_without_proc_stat(tmp_path, monkeypatch):
    from trm import threads

    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    assert threads.busy_cores(path=str(tmp_path / "missing")) == 1.5


def test_without_measuring_the_load_average_is_read_at_once(monkeypatch):
    from trm import threads

    monkeypatch.setattr(threads, "busy_cores", lambda *a, **k: (_ for _ in ()).throw(AssertionError("sampled")))
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert threads.chosen_threads({}, cores=2, measure=False) == (1, "2 cores, 1.2 busy")


def test_the_plan_names_what_set_the_thread_count(monkeypatch):
    from trm.threads import configure_threads, thread_source

    monkeypatch.setattr("torch.set_num_threads", lambda n: None)
    configure_threads({"TRM_NUM_THREADS": "1"})
    assert thread_source() == "TRM_NUM_THREADS"
    configure_threads({}, measure=False)
    assert thread_source().startswith("chosen from ") and "TRM_NUM_THREADS overrides" in thread_source()
