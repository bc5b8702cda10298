"""The site's long-running processes for tests and benchmarks: RQ workers and real-time
listeners (`bench usedesk-email listen`).

Each is a child process of this one with the same Python and environment (so the code on
PYTHONPATH is the code under test), started from the bench's sites folder; its output goes
to a log file that `tail` shows when a test fails. `stop` ends it with SIGTERM (the
listener gives its channels back), `kill` with SIGKILL (it simply vanishes).

A bench's queues are shared by all its sites, so `bench worker` would also run other
sites' jobs (with this checkout's code), and their workers this site's. Inside
`own_queues()` the site's jobs go to queues of its own (a `bench_id` in its site config, as
a separate bench has), and `worker()` starts RQ's worker, as `bench worker` does, on them.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import frappe
from frappe.installer import update_site_config
from frappe.utils import get_bench_id
from frappe.utils.background_jobs import get_queue_list, get_redis_conn

WORKER_QUEUES = "long,default,short"


class BenchProcess:
	"""`bench --site S <args>` running in the background."""

	def __init__(self, *args: str, command: list[str] | None = None) -> None:
		self.args = args
		site = frappe.local.site
		command = command or [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site]
		fd, path = tempfile.mkstemp(prefix="usedesk-bench-", suffix=".log")
		self.log = Path(path)
		with os.fdopen(fd, "wb") as output:
			self.process = subprocess.Popen(
				[*command, *args],
				cwd=frappe.local.sites_path,
				stdin=subprocess.DEVNULL,
				stdout=output,
				stderr=subprocess.STDOUT,
				start_new_session=True,
			)

	@property
	def pid(self) -> int:
		return self.process.pid

	def running(self) -> bool:
		return self.process.poll() is None

	def stop(self, timeout: float = 30) -> int:
		"""SIGTERM, then SIGKILL after `timeout` seconds; the exit status."""
		if self.running():
			self.process.send_signal(signal.SIGTERM)
			try:
				return self.process.wait(timeout)
			except subprocess.TimeoutExpired:
				pass
		return self.kill()

	def kill(self) -> int:
		"""SIGKILL to the process and what it started (an RQ worker's work horse)."""
		try:
			os.killpg(self.process.pid, signal.SIGKILL)
		except ProcessLookupError:
			pass
		return self.process.wait(30)

	def tail(self, lines: int = 40) -> str:
		text = self.log.read_text(errors="replace") if self.log.exists() else ""
		return f"--- {' '.join(self.args)} (pid {self.pid}):\n" + "\n".join(text.splitlines()[-lines:])

	def close(self) -> None:
		self.stop()
		self.log.unlink(missing_ok=True)


@contextmanager
def own_queues() -> Iterator[str]:
	"""The site's jobs go to queues of its own for the block (see the module's docstring)."""
	before = frappe.local.conf.get("bench_id")
	bench_id = f"{get_bench_id()}-{frappe.local.site}"
	update_site_config("bench_id", bench_id)
	try:
		yield bench_id
	finally:
		update_site_config("bench_id", before or "None")
		if before is None:
			frappe.local.conf.pop("bench_id", None)


def worker() -> BenchProcess:
	"""An RQ worker for this site's queues: it runs the poll jobs."""
	return BenchProcess(frappe.local.site, command=[sys.executable, "-m", "usedesk_email.testing.background"])


def listener() -> BenchProcess:
	return BenchProcess("usedesk-email", "listen")


def wait_until(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.2):
	"""Poll `predicate` with a fresh database snapshot each time until it returns something
	true; that value, or AssertionError naming `what` after `timeout` seconds."""
	deadline = time.monotonic() + timeout
	while True:
		frappe.db.rollback()
		value = predicate()
		if value:
			return value
		if time.monotonic() > deadline:
			raise AssertionError(f"not within {timeout} s: {what}")
		time.sleep(every)


def work(site: str) -> None:
	"""What `bench worker --queue long,default,short` runs, on the queues `site` enqueues to."""
	from rq import Worker

	frappe.init(site=site)
	queues = get_queue_list(WORKER_QUEUES.split(","), build_queue_name=True)
	connection = get_redis_conn()
	frappe.destroy()
	Worker(queues, connection=connection).work(logging_level="INFO")


if __name__ == "__main__":
	work(sys.argv[1])
