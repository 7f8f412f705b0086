"""A pymesos (0.3.15) executor for the retz-mesos-local conformance test.

Each launched task goes TASK_RUNNING, writes its data to <task>.out in the sandbox, then
TASK_FINISHED. A killed task goes TASK_KILLED.

pymesos 0.3.15's MesosExecutorDriver does not read MESOS_EXECUTOR_AUTHENTICATION_TOKEN
(executor authentication came to Mesos after it), so TokenExecutorDriver adds
`Authorization: Bearer <token>` to its SUBSCRIBE request and to every call, as the Mesos
executor libraries do when the agent sets that variable.
"""

import logging
import os
import sys
import threading
import time

from addict import Dict
from pymesos import Executor, MesosExecutorDriver, decode_data


def status(task_id, state, message=None):
    s = Dict()
    s.task_id.value = task_id
    s.state = state
    s.timestamp = time.time()
    if message:
        s.message = message
    return s


class TokenExecutorDriver(MesosExecutorDriver):
    """MesosExecutorDriver presenting the agent's executor token."""

    def __init__(self, *args, **kwargs):
        super(TokenExecutorDriver, self).__init__(*args, **kwargs)
        self.authorization = "Bearer " + os.environ["MESOS_EXECUTOR_AUTHENTICATION_TOKEN"]

    def gen_request(self):
        request = super(TokenExecutorDriver, self).gen_request()
        head, sep, body = request.partition(b"\r\n\r\n")
        return head + ("\r\nAuthorization: %s" % self.authorization).encode("ascii") + sep + body

    def _send(self, body, path="/api/v1/executor", method="POST", headers=None):
        headers = dict(headers or {})
        headers["Authorization"] = self.authorization
        return super(TokenExecutorDriver, self)._send(body, path, method, headers)


class ConformanceExecutor(Executor):
    def __init__(self):
        self.killed = set()

    def launchTask(self, driver, task):
        tid = task.task_id.value

        def run():
            driver.sendStatusUpdate(status(tid, "TASK_RUNNING"))
            data = decode_data(task.data) if task.get("data") else b""
            with open(tid + ".out", "wb") as f:
                f.write(data)
            time.sleep(0.2)
            if tid not in self.killed:
                driver.sendStatusUpdate(status(tid, "TASK_FINISHED", "wrote %s.out" % tid))

        threading.Thread(target=run, daemon=True).start()

    def killTask(self, driver, task_id):
        self.killed.add(task_id.value)
        driver.sendStatusUpdate(status(task_id.value, "TASK_KILLED"))

    def shutdown(self, driver):
        driver.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    TokenExecutorDriver(ConformanceExecutor(), use_addict=True).run()
