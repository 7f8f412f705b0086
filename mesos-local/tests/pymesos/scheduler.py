"""A pymesos (0.3.15) scheduler for the retz-mesos-local conformance test.

Subscribes to the master given with --master, launches --tasks tasks on a custom
pymesos executor (executor.py, run with this interpreter), and exits 0 once every task
went TASK_RUNNING then TASK_FINISHED. pymesos acknowledges each update itself (implicit
acknowledgements); the agent releases a task's next update only after that, so a
TASK_FINISHED arriving proves the acknowledgements flowed. Any other terminal state, an
ERROR event or the --timeout ends it with status 1.

Authenticates as the principal and secret in $PYMESOS_PRINCIPAL and $PYMESOS_SECRET
(HTTP Basic, pymesos' principal/secret), with FrameworkInfo.principal set to it.

Prints one line per event on stdout: "UPDATE <task> <state>", "DONE", "FAIL <why>".
"""

import argparse
import getpass
import json
import logging
import os
import sys
import threading

from addict import Dict
from pymesos import MesosSchedulerDriver, Scheduler, encode_data

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}
TASK_CPUS = 1.0
TASK_MEM = 64.0
EXECUTOR_CPUS = 0.1
EXECUTOR_MEM = 32.0


def scalar(offer, name):
    return sum(r.scalar.value for r in offer.resources if r.name == name and r.type == "SCALAR")


def resource(name, value):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


class ConformanceScheduler(Scheduler):
    def __init__(self, executor_script, count):
        self.executor_script = executor_script
        self.pending = ["task-%d" % i for i in range(count)]
        self.states = {t: [] for t in self.pending}
        self.lock = threading.Lock()
        self.outcome = None
        self.finished = threading.Event()

    def executor_info(self):
        info = Dict()
        info.executor_id.value = "pymesos-executor"
        info.name = "pymesos conformance executor"
        info.command.value = "%s %s" % (sys.executable, self.executor_script)
        info.resources = [resource("cpus", EXECUTOR_CPUS), resource("mem", EXECUTOR_MEM)]
        return info

    def end(self, outcome):
        if self.outcome is None:
            self.outcome = outcome
            print(outcome, flush=True)
            self.finished.set()

    def registered(self, driver, framework_id, master_info):
        print("REGISTERED %s" % framework_id.value, flush=True)

    def resourceOffers(self, driver, offers):
        with self.lock:
            for offer in offers:
                cpus, mem = scalar(offer, "cpus"), scalar(offer, "mem")
                running = any(e.value == "pymesos-executor" for e in offer.get("executor_ids", []))
                if not running:
                    cpus -= EXECUTOR_CPUS
                    mem -= EXECUTOR_MEM
                tasks = []
                while self.pending and cpus >= TASK_CPUS and mem >= TASK_MEM:
                    tid = self.pending.pop(0)
                    task = Dict()
                    task.task_id.value = tid
                    task.agent_id.value = offer.agent_id.value
                    task.name = tid
                    task.executor = self.executor_info()
                    task.data = encode_data(json.dumps({"task": tid}).encode("utf-8"))
                    task.resources = [resource("cpus", TASK_CPUS), resource("mem", TASK_MEM)]
                    tasks.append(task)
                    cpus -= TASK_CPUS
                    mem -= TASK_MEM
                if tasks:
                    driver.launchTasks(offer.id, tasks, {"refuse_seconds": 0.5})
                else:
                    driver.declineOffer(offer.id, {"refuse_seconds": 0.5})

    def statusUpdate(self, driver, update):
        tid, state = update.task_id.value, update.state
        print("UPDATE %s %s" % (tid, state), flush=True)
        with self.lock:
            if tid not in self.states:
                self.end("FAIL update for unknown task %s" % tid)
                return
            self.states[tid].append(state)
            if state in TERMINAL and state != "TASK_FINISHED":
                self.end("FAIL %s ended %s: %s" % (tid, state, update.get("message", "")))
                return
            done = all(s and s[-1] == "TASK_FINISHED" for s in self.states.values())
            if done:
                for t, s in self.states.items():
                    if "TASK_RUNNING" not in s:
                        self.end("FAIL %s finished without TASK_RUNNING: %s" % (t, s))
                        return
                self.end("DONE")

    def error(self, driver, message):
        self.end("FAIL error event: %s" % message)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--master", required=True)
    p.add_argument("--executor", required=True)
    p.add_argument("--tasks", type=int, default=3)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    framework = Dict()
    framework.user = getpass.getuser()
    framework.name = "pymesos-conformance"
    framework.hostname = "localhost"
    framework.failover_timeout = 60
    principal = os.environ["PYMESOS_PRINCIPAL"]
    framework.principal = principal

    sched = ConformanceScheduler(args.executor, args.tasks)
    driver = MesosSchedulerDriver(sched, framework, args.master, use_addict=True,
                                  principal=principal, secret=os.environ["PYMESOS_SECRET"])
    driver.start()
    if not sched.finished.wait(args.timeout):
        sched.end("FAIL timeout after %ss; states: %s" % (args.timeout, sched.states))
    driver.stop()
    driver.join()
    return 0 if sched.outcome == "DONE" else 1


if __name__ == "__main__":
    sys.exit(main())
