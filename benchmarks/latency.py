"""From delivery to committed ticket message: the real-time listener beside the 5-minute poll.

Run from the bench's sites directory with the bench's Python, as the bench's owner:

    cd frappe-bench/sites
    ../env/bin/python ../apps/usedesk_email/benchmarks/latency.py --site S \\
        [--channels 50] [--messages 10] [--window 300] [--workers 2] [--idle-channels 200]

It starts a Dovecot, `--channels` External channels on it, `--workers` RQ workers and one
listener (`bench usedesk-email listen`), waits until every channel is Live, then delivers
`--messages` messages to each mailbox through Dovecot (IMAP APPEND, as its LDA does) at
random moments spread over `--window` seconds. A delivery's delay is from the moment
Dovecot confirmed it to the moment its Communication is committed (the database is
watched every 100 ms from here). Beside it, the delay the scheduled poll would give the same
deliveries: the wait until the next 5-minute mark (`*/5` cron) plus the listener's median
delay, which is mostly the poll's own work.

Then it disables those channels, creates `--idle-channels` others and a fresh listener,
waits until all are Live and reads the listener's RSS (VmRSS and its peak, VmHWM) and
threads. The site's other enabled channels are disabled first, and everything created is
left on the site: use a throwaway site. The site's jobs run in queues of its own meanwhile
(`testing.background.own_queues`), so other sites' workers do not take them.
The last line is `p95 latency: X s`.
"""

import argparse
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta

import frappe

RUN_ID = uuid.uuid4().hex[:8]
CRON_MINUTES = 5
WATCH_EVERY = 0.1


def percentile(values: list[float], p: float) -> float:
	ordered = sorted(values)
	return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
	return (
		f"p50 {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s, "
		f"max {max(values):.2f} s, mean {statistics.mean(values):.2f} s"
	)


def make_channels(server, count: int, prefix: str) -> list[tuple]:
	from usedesk_email.testing.desk import dovecot_channel

	channels = []
	for _ in range(count):
		box = server.new_mailbox(prefix)
		channels.append((box, dovecot_channel(server, box, f"{prefix} {RUN_ID} {box.user}").name))
	frappe.db.commit()
	return channels


def wait_live(names: list[str], timeout: float) -> float:
	from usedesk_email.testing.background import wait_until

	began = time.monotonic()
	wait_until(
		lambda: frappe.db.count("Email Channel", {"name": ("in", names), "live_state": "Live"}) == len(names),
		timeout,
		f"{len(names)} channels Live",
		every=0.5,
	)
	return time.monotonic() - began


def disable(names: list[str] | None = None) -> None:
	filters = {"enabled": 1} if names is None else {"name": ("in", names)}
	frappe.db.set_value("Email Channel", filters, "enabled", 0, update_modified=False)
	frappe.db.commit()


def deliver_all(server, schedule: list[tuple[float, object, str, bytes]], delivered: dict) -> None:
	"""Deliver each message at its moment (seconds from the start); note when Dovecot confirmed."""
	start = time.monotonic()
	for at, box, message_id, raw in schedule:
		time.sleep(max(0.0, start + at - time.monotonic()))
		server.append(box.user, raw)
		delivered[message_id] = (time.monotonic(), datetime.now())


def watch_commits(expected: set[str], delivered: dict, timeout: float) -> dict[str, float]:
	"""When each message's Communication became visible, polling the database."""
	committed: dict[str, float] = {}
	deadline = time.monotonic() + timeout
	while len(committed) < len(expected) and time.monotonic() < deadline:
		frappe.db.rollback()
		waiting = [m for m in delivered if m not in committed]
		if waiting:
			now = time.monotonic()
			for message_id in frappe.get_all(
				"Communication", filters={"message_id": ("in", waiting)}, pluck="message_id"
			):
				committed[message_id] = now
		time.sleep(WATCH_EVERY)
	return committed


def cron_delay(at: datetime) -> float:
	"""Seconds from `at` to the next `*/5` mark of the scheduler's clock."""
	mark = at.replace(second=0, microsecond=0)
	mark += timedelta(minutes=CRON_MINUTES - mark.minute % CRON_MINUTES)
	return (mark - at).total_seconds()


def latency(args, server, background) -> list[float]:
	from usedesk_email.testing.desk import mail

	channels = make_channels(server, args.channels, "lat")
	processes = [background.worker() for _ in range(args.workers)] + [background.listener()]
	try:
		took = wait_live([name for _box, name in channels], 120 + args.channels)
		print(f"{args.channels} channels Live {took:.1f} s after the listener started")
		rng = random.Random(7)
		schedule = []
		for box, _name in channels:
			for n in range(args.messages):
				message_id = f"{box.user}.{n}@{RUN_ID}.example"
				raw = mail(
					f"Latency {n}", sender=f"client{n}@clients.example", message_id=message_id, to=box.user
				)
				schedule.append((rng.uniform(0, args.window), box, message_id, raw))
		schedule.sort(key=lambda item: item[0])
		delivered: dict[str, tuple[float, datetime]] = {}
		sender = threading.Thread(target=deliver_all, args=(server, schedule, delivered), daemon=True)
		sender.start()
		committed = watch_commits({m for _at, _b, m, _r in schedule}, delivered, args.window + 300)
		sender.join()
	finally:
		for process in processes:
			process.close()
	missing = [m for m in delivered if m not in committed]
	if missing:
		print(f"NOT STORED within the wait: {len(missing)} of {len(delivered)}, e.g. {missing[:3]}")
	delays = [committed[m] - delivered[m][0] for m in committed]
	median = statistics.median(delays)
	cron = [cron_delay(delivered[m][1]) + median for m in committed]
	print(
		f"\n{len(delivered)} messages to {args.channels} channels over {args.window:.0f} s, "
		f"{args.workers} workers, load average {os.getloadavg()[0]:.1f} at the end"
	)
	print("| path | delivery -> committed ticket message |")
	print("| --- | --- |")
	print(f"| listener (IMAP IDLE) | {summary(delays)} |")
	print(f"| 5-minute poll (cron), same deliveries | {summary(cron)} |")
	disable([name for _box, name in channels])
	return delays


def listener_memory(args, server, background) -> None:
	channels = make_channels(server, args.idle_channels, "idle")
	listener = background.listener()
	try:
		took = wait_live([name for _box, name in channels], 120 + args.idle_channels)
		time.sleep(10)  # settled: every connection idling
		status = dict(
			line.split(":", 1)
			for line in open(f"/proc/{listener.pid}/status").read().splitlines()
			if ":" in line
		)
		print(
			f"\nlistener holding {args.idle_channels} idle channels (Live {took:.1f} s after start): "
			f"RSS {int(status['VmRSS'].split()[0]) / 1024:.1f} MB, peak {int(status['VmHWM'].split()[0]) / 1024:.1f} MB, "
			f"{status['Threads'].strip()} threads (one per IDLE connection), "
			f"{len(os.listdir(f'/proc/{listener.pid}/fd'))} file descriptors"
		)
	finally:
		listener.close()
	disable([name for _box, name in channels])


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--site", required=True)
	parser.add_argument("--channels", type=int, default=50)
	parser.add_argument("--messages", type=int, default=10, help="per channel")
	parser.add_argument("--window", type=float, default=300, help="seconds the deliveries spread over")
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--idle-channels", type=int, default=200, help="0: skip the memory part")
	args = parser.parse_args()

	from usedesk_email.testing import background
	from usedesk_email.testing.dovecot import DovecotServer

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	print(f"run {RUN_ID} on {args.site}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
	disable()
	with background.own_queues(), DovecotServer() as server:
		delays = latency(args, server, background)
		if args.idle_channels:
			listener_memory(args, server, background)
	print(f"p95 latency: {percentile(delays, 95):.2f} s")


if __name__ == "__main__":
	main()
