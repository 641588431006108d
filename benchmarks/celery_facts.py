"""Measure three facts about Celery + kombu on a real Redis broker (the reasons behind ``es_biomed/ingest/queue.py``).

1. A message whose whole worker (main process and prefork child) was SIGKILLed is redelivered only after
   ``visibility_timeout``, by a restore sweep of another worker that runs every ``unacked_restore_interval *
   unacked_restore_throttle`` seconds: (a) kombu's defaults (10 s x 10), (b) the project's (2 s x 1); both with
   ``visibility_timeout`` 20 s. Measured: SIGKILL -> the task starting again on a second, already-running worker.
2. A ``visibility_timeout`` (5 s) shorter than the task (sleeps 15 s) makes it run more than once: two workers,
   executions counted with INCR inside the task.
3. SIGKILL of the prefork child only (main process alive), with ``task_acks_late``: without
   ``task_reject_on_worker_lost`` the task ends FAILURE (WorkerLostError) and never runs again; with it the message
   is requeued and runs again as soon as the pool notices the dead child (at once, or at billiard's next
   ``maintain_pool`` tick, which runs every 5 s).

Everything runs here: a private ``redis-server`` on a free port (``tests/redis_server.py``) and Celery workers
(``python -m celery -A benchmarks.celery_facts_app worker -c 1 --without-gossip --without-mingle``, cwd = repo
root) as subprocesses, all stopped by PID at the end, also on error. Usage, from the repository root::

    .venv/bin/python benchmarks/celery_facts.py [--quick]     # -> benchmarks/results/celery_facts.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _common import save  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402

APP = "benchmarks.celery_facts_app"
QUEUE = "es-biomed"  # the project's task_default_queue, which the app inherits
LOG_TIME = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}):")
LOG_PATTERNS = re.compile(r"WorkerLostError|exited with|signal 9|Restor|[Rr]eject|requeue", re.I)


# --------------------------------------------------------------------------------------------------- processes
def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), empty when it is gone."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_dead(pid: int, timeout: float = 5.0) -> bool:
    """Poll until ``pid`` is gone or a zombie (SIGKILL is delivered asynchronously); True if it died in time."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Worker:
    """One ``celery worker`` subprocess (concurrency 1, prefork) with its log in ``logdir``."""

    def __init__(self, name: str, env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.hostname = f"{name}@facts"
        self.log_path = logdir / f"{name}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", APP, "worker",
            "-c", "1", "-P", "prefork", "-n", self.hostname, "-Q", QUEUE,
            "--without-gossip", "--without-mingle", "--loglevel", "INFO",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.seen_pids: set[int] = set()
        self.ready_at: float | None = None

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Block until the log says ``ready.``; returns that wall-clock time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.returncode}; see {self.log_path}")
            if " ready." in self.log_path.read_text(errors="replace"):
                self.ready_at = self.first_log_time(" ready.") or time.time()
                self.seen_pids.update(_children(self.pid))
                return self.ready_at
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready after {timeout} s; see {self.log_path}")

    def kill_whole(self, child_pid: int) -> float:
        """SIGKILL the main process first (so it cannot requeue anything), then the child; returns the time."""
        self.seen_pids.add(child_pid)
        _kill(self.pid, signal.SIGKILL)
        t = time.time()
        _kill(child_pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        return t

    def first_log_time(self, needle: str) -> float | None:
        """Wall-clock time of the first log line containing ``needle`` (Celery logs local time, in ms)."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            m = LOG_TIME.match(line)
            if m and needle in line:
                return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
        return None

    def log_lines(self) -> list[str]:
        """Log lines about lost workers, rejects and restores (for the JSON)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line.strip()[:300] for line in text.splitlines() if LOG_PATTERNS.search(line)][:20]

    def stop(self) -> None:
        """Cold shutdown (SIGQUIT) by PID, SIGKILL after 15 s; then SIGKILL every child pid it ever had."""
        self.seen_pids.update(_children(self.pid))
        if self.proc.poll() is None:
            _kill(self.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.seen_pids.update(_children(self.pid))
                _kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in self.seen_pids:
            if _alive(pid):
                _kill(pid, signal.SIGKILL)


class Lab:
    """A redis-server, the task module imported against it, and every worker started, for cleanup."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer(root / "redis").start()
        os.environ["BROKER_URL"] = self.redis.url
        os.environ["RESULT_BACKEND"] = self.redis.url.rsplit("/", 1)[0] + "/1"
        self.mod = importlib.import_module(APP)
        import redis

        self.r = redis.Redis.from_url(self.redis.url)
        self.workers: list[Worker] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_FACTS_", "ES_BIOMED_"))}
        env.update(BROKER_URL=os.environ["BROKER_URL"], RESULT_BACKEND=os.environ["RESULT_BACKEND"], **extra)
        return env

    def start_workers(self, names: list[str], env: dict[str, str]) -> list[Worker]:
        ws = [Worker(n, env, self.root) for n in names]
        self.workers += ws
        for w in ws:
            w.wait_ready()
        return ws

    def stop_workers(self) -> None:
        for w in self.workers:
            w.stop()
        self.workers.clear()

    def reset(self) -> None:
        """Stop all workers and empty both Redis databases (broker and results)."""
        self.stop_workers()
        self.r.flushall()

    def submit(self, key: str, seconds: float) -> tuple[str, float]:
        t = time.time()
        res = self.mod.sleep_count.apply_async(args=(key, seconds))
        return res.id, t

    def starts(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(f"{key}:starts", 0, -1)]

    def wait_starts(self, key: str, n: int, timeout: float) -> list[dict[str, Any]]:
        """Poll until ``key`` has ``n`` recorded starts or ``timeout`` passes; returns what is there."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.starts(key)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.starts(key)

    def wait_ends(self, key: str, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.r.llen(f"{key}:ends") < n:
            time.sleep(0.05)
        return int(self.r.llen(f"{key}:ends"))

    def state(self, task_id: str) -> tuple[str, str | None]:
        res = self.mod.app.AsyncResult(task_id)
        state = res.state
        return state, (repr(res.result)[:200] if state in ("FAILURE", "SUCCESS") else None)

    def wait_state(self, task_id: str, timeout: float) -> str:
        """Poll until the task's state is SUCCESS or FAILURE (the task's last write precedes the worker's
        result write by a few ms) or ``timeout`` passes; returns the last state read."""
        deadline = time.monotonic() + timeout
        while (st := self.state(task_id)[0]) not in ("SUCCESS", "FAILURE") and time.monotonic() < deadline:
            time.sleep(0.05)
        return st

    def broker_snapshot(self) -> dict[str, int]:
        return {
            "queue_len": int(self.r.llen(QUEUE)),
            "unacked": int(self.r.hlen("unacked")),
            "unacked_index": int(self.r.zcard("unacked_index")),
        }

    def close(self) -> None:
        try:
            self.stop_workers()
        finally:
            self.redis.stop()


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    root = Path(tempfile.mkdtemp(prefix="celery_facts_"))
    the_lab: Lab | None = None
    keep = True
    try:
        the_lab = Lab(root)
        yield the_lab
    except BaseException:
        print(f"error; worker and redis logs kept in {root}", file=sys.stderr)
        raise
    else:
        keep = False
    finally:
        if the_lab is not None:
            the_lab.close()
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


def _settings(lab_: Lab, env: dict[str, str]) -> dict[str, Any]:
    """The settings the workers run with (same function, same env) and kombu's effective restore values."""
    from kombu.transport.redis import Channel

    conf = lab_.mod.settings_from_env(env)
    opts = conf["broker_transport_options"]
    interval = opts.get("unacked_restore_interval", Channel.unacked_restore_interval)
    throttle = opts.get("unacked_restore_throttle", Channel.unacked_restore_throttle)
    return {
        "broker_transport_options": opts,
        "effective": {
            "visibility_timeout_s": opts["visibility_timeout"],
            "unacked_restore_interval_s": interval,
            "unacked_restore_throttle": throttle,
            "sweep_period_s": interval * throttle,
        },
        "task_acks_late": conf["task_acks_late"],
        "task_reject_on_worker_lost": conf["task_reject_on_worker_lost"],
        "worker_prefetch_multiplier": conf["worker_prefetch_multiplier"],
        "concurrency": 1,
        "accept_content": conf["accept_content"],
    }


# --------------------------------------------------------------------------------------------------- fact 1
def fact1_run(lab_: Lab, env: dict[str, str], key: str, idle_s: float, timeout: float) -> dict[str, Any]:
    """Two workers; SIGKILL the whole worker that took the task 1 s into it; time until it starts elsewhere."""
    workers = lab_.start_workers([f"{key}-A", f"{key}-B"], env)
    time.sleep(idle_s)  # vary the phase of the survivor's restore sweep relative to the kill
    task_id, t_submit = lab_.submit(key, 5.0)
    first = lab_.wait_starts(key, 1, 30)
    if not first:
        raise RuntimeError(f"{key}: the task never started")
    holder = next(w for w in workers if w.hostname == first[0]["hostname"])
    survivor = next(w for w in workers if w is not holder)
    if first[0]["ppid"] != holder.pid:
        raise RuntimeError(f"{key}: task ppid {first[0]['ppid']} is not the worker's main pid {holder.pid}")
    delivered = lab_.r.zrange("unacked_index", 0, -1, withscores=True)
    delivered_at = float(delivered[0][1]) if delivered else None
    time.sleep(max(0.0, first[0]["t"] + 1.0 - time.time()))
    t_kill = holder.kill_whole(first[0]["pid"])
    both_dead = _wait_dead(holder.pid) and _wait_dead(first[0]["pid"])
    again = lab_.wait_starts(key, 2, timeout)
    run: dict[str, Any] = {
        "survivor_idle_before_submit_s": idle_s,
        "first_start_after_submit_s": round(first[0]["t"] - t_submit, 3),
        "killed_main_and_child_dead": both_dead,
        "kill_after_first_start_s": round(t_kill - first[0]["t"], 3),
        "delivered_at_minus_kill_s": round(delivered_at - t_kill, 3) if delivered_at else None,
        "survivor_ready_before_kill_s": round(t_kill - survivor.ready_at, 3) if survivor.ready_at else None,
    }
    if len(again) >= 2:
        second = again[1]
        run.update(
            redelivered=True,
            restart_after_kill_s=round(second["t"] - t_kill, 3),
            restart_after_delivery_s=round(second["t"] - delivered_at, 3) if delivered_at else None,
            restart_after_survivor_ready_s=round(second["t"] - survivor.ready_at, 3) if survivor.ready_at else None,
            restarted_on_survivor=second["hostname"] == survivor.hostname,
            redelivered_flag=second["redelivered"],
        )
        lab_.wait_ends(key, 1, 15)
        run["final_state"] = lab_.wait_state(task_id, 10)
        run["executions"] = int(lab_.r.get(f"{key}:count") or 0)
    else:
        run.update(redelivered=False, not_redelivered_within_s=timeout)
    lab_.reset()
    print(f"  {key}: {run}", flush=True)
    return run


def fact1(lab_: Lab, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cases = {
        "a_kombu_default_sweep": (
            {"CELERY_FACTS_RESTORE_INTERVAL": "default", "CELERY_FACTS_RESTORE_THROTTLE": "default"},
            [0.0] if quick else [0.0, 45.0, 90.0],
            170.0,
        ),
        "b_project_sweep": (
            {"CELERY_FACTS_RESTORE_INTERVAL": "2", "CELERY_FACTS_RESTORE_THROTTLE": "1"},
            [0.0] if quick else [0.0, 3.0, 7.0],
            60.0,
        ),
    }
    for name, (extra, idles, timeout) in cases.items():
        env = lab_.env(ES_BIOMED_VISIBILITY_TIMEOUT="20", **extra)
        print(f"fact 1 {name}", flush=True)
        runs = [fact1_run(lab_, env, f"f1{name[0]}{i}", idle, timeout) for i, idle in enumerate(idles)]
        delays = [r["restart_after_kill_s"] for r in runs if r.get("redelivered")]
        out[name] = {
            "settings": _settings(lab_, env),
            "task_sleep_s": 5.0,
            "runs": runs,
            "restart_after_kill_s": {"min": min(delays), "max": max(delays)} if delays else None,
        }
    return out


# --------------------------------------------------------------------------------------------------- fact 2
def fact2_run(lab_: Lab, env: dict[str, str], key: str, window_s: float) -> dict[str, Any]:
    """Two workers, a 15 s task, visibility 5 s: record every execution during ``window_s`` after submit."""
    lab_.start_workers([f"{key}-A", f"{key}-B"], env)
    task_id, t_submit = lab_.submit(key, 15.0)
    seen: dict[tuple[str, float], None] = {}  # every (delivery tag, delivery time) in kombu's unacked index
    while time.time() < t_submit + window_s:
        for tag, score in lab_.r.zrange("unacked_index", 0, -1, withscores=True):
            seen.setdefault((tag.decode(), score), None)
        time.sleep(0.05)
    starts = lab_.starts(key)
    ends = [json.loads(x) for x in lab_.r.lrange(f"{key}:ends", 0, -1)]
    run = {
        "window_s": window_s,
        "executions_started": int(lab_.r.get(f"{key}:count") or 0),
        "executions_finished": len(ends),
        "starts": [
            {
                "after_submit_s": round(s["t"] - t_submit, 2),
                "worker": s["hostname"].split("@")[0].rsplit("-", 1)[-1],
                "redelivered_flag": s["redelivered"],
            }
            for s in starts
        ],
        "ends_after_submit_s": [round(e["t"] - t_submit, 2) for e in ends],
        "unacked_deliveries_seen": [
            {"delivery_tag": tag, "delivered_after_submit_s": round(score - t_submit, 2)} for tag, score in seen
        ],
        "state_at_end_of_window": lab_.state(task_id)[0],
        "broker_at_end_of_window": lab_.broker_snapshot(),
    }
    lab_.reset()
    print(f"  {key}: {run}", flush=True)
    return run


def fact2(lab_: Lab, quick: bool) -> dict[str, Any]:
    env = lab_.env(
        ES_BIOMED_VISIBILITY_TIMEOUT="5", CELERY_FACTS_RESTORE_INTERVAL="2", CELERY_FACTS_RESTORE_THROTTLE="1"
    )
    print("fact 2", flush=True)
    window = 31.0 if quick else 46.0
    runs = [fact2_run(lab_, env, f"f2r{i}", window) for i in range(1 if quick else 3)]
    return {"settings": _settings(lab_, env), "task_sleep_s": 15.0, "runs": runs}


# --------------------------------------------------------------------------------------------------- fact 3
def _after(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)


def fact3_run(lab_: Lab, env: dict[str, str], key: str) -> dict[str, Any]:
    """One worker; SIGKILL its prefork child 1 s into a 3 s task; follow state and executions for 20 s."""
    (worker,) = lab_.start_workers([f"{key}-A"], env)
    task_id, _ = lab_.submit(key, 3.0)
    first = lab_.wait_starts(key, 1, 30)
    if not first:
        raise RuntimeError(f"{key}: the task never started")
    child = first[0]["pid"]
    if first[0]["ppid"] != worker.pid:
        raise RuntimeError(f"{key}: task ppid {first[0]['ppid']} is not the worker's main pid {worker.pid}")
    worker.seen_pids.add(child)
    time.sleep(max(0.0, first[0]["t"] + 1.0 - time.time()))
    _kill(child, signal.SIGKILL)
    t_kill = time.time()
    states: list[dict[str, Any]] = []
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        st, _ = lab_.state(task_id)
        if not states or states[-1]["state"] != st:
            states.append({"state": st, "after_kill_s": round(time.time() - t_kill, 3)})
        time.sleep(0.05)
    starts = lab_.starts(key)
    final_state, final_result = lab_.state(task_id)
    run = {
        "child_pid_killed": child,
        "main_process_alive_after": _alive(worker.pid),
        "executions": int(lab_.r.get(f"{key}:count") or 0),
        "executions_finished": int(lab_.r.llen(f"{key}:ends")),
        "child_exit_logged_after_kill_s": _after(worker.first_log_time("exited with"), t_kill),
        "worker_lost_logged_after_kill_s": _after(worker.first_log_time("WorkerLostError"), t_kill),
        "rerun_after_kill_s": round(starts[1]["t"] - t_kill, 3) if len(starts) > 1 else None,
        "rerun_in_new_child": (starts[1]["pid"] != child) if len(starts) > 1 else None,
        "rerun_redelivered_flag": starts[1]["redelivered"] if len(starts) > 1 else None,
        "state_timeline": states,
        "final_state": final_state,
        "final_result": final_result,
        "broker_after": lab_.broker_snapshot(),
        "worker_log": worker.log_lines(),
    }
    lab_.reset()
    print(f"  {key}: { {k: v for k, v in run.items() if k != 'worker_log'} }", flush=True)
    return run


def fact3(lab_: Lab, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, reject in (("without_reject_on_worker_lost", False), ("with_reject_on_worker_lost", True)):
        # the project's defaults otherwise: visibility 3600 s, so no sweep can redeliver within the 20 s watched
        env = lab_.env(CELERY_FACTS_RESTORE_INTERVAL="2", CELERY_FACTS_REJECT_ON_LOST="1" if reject else "0")
        print(f"fact 3 {name}", flush=True)
        runs = [fact3_run(lab_, env, f"f3{'r' if reject else 'n'}{i}") for i in range(1 if quick else 3)]
        out[name] = {"settings": _settings(lab_, env), "task_sleep_s": 3.0, "runs": runs}
    return out


# --------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition of each case (about 5 minutes)")
    parser.add_argument("--only", choices=["1", "2", "3"], action="append", help="run only these facts")
    args = parser.parse_args(argv)
    only = set(args.only or ["1", "2", "3"])
    import celery
    import kombu
    import redis

    t0 = time.time()
    result: dict[str, Any] = {
        "command": "python benchmarks/celery_facts.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "versions": {
            "celery": celery.__version__,
            "kombu": kombu.__version__,
            "redis-py": redis.__version__,
            "redis-server": subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
        },
        "worker_command": f"python -m celery -A {APP} worker -c 1 -P prefork -n NAME@facts -Q {QUEUE} "
        "--without-gossip --without-mingle",
    }
    with lab() as lab_:
        if "3" in only:
            result["fact3_child_killed"] = fact3(lab_, args.quick)
        if "2" in only:
            result["fact2_short_visibility"] = fact2(lab_, args.quick)
        if "1" in only:
            result["fact1_whole_worker_killed"] = fact1(lab_, args.quick)
    result["wall_s"] = round(time.time() - t0, 1)
    name = "celery_facts" if only == {"1", "2", "3"} else "celery_facts_partial"
    print(f"wrote {save(name, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
