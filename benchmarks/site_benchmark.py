"""Ingestion and sending on a real site, side by side with Frappe's own Email Account.

Run from the bench's sites directory with the bench's Python (needs root for Dovecot):

    cd frappe-bench/sites
    ../env/bin/python ../apps/usedesk_email/benchmarks/site_benchmark.py --site S --n 1000 \\
        [--stored-tickets 50000] [--frappe-runs 0] [--send 50] [--rounds 5] [--profile FILE] \\
        [--compare-search]

One run fills three Dovecot mailboxes with the same N generated messages (plain and HTML,
one in ten with an attachment of 200 KB of its own, a third replying to earlier ones; only the Message-ID
domain differs, so the three consumers never see each other's mail as duplicates) and
measures, each in its own child process so peak RSS is its own:

- floor: IMAP fetch (`drain.drain`) and `parse_message`, no database;
- app: successive `poll.poll_channel` runs into tickets until the mailbox is drained;
- frappe: successive `EmailAccount.receive()` runs (UNSEEN) into Communications, all of
  them or only the first `--frappe-runs` runs.

The channel and the Email Account are each connected to their empty mailbox and pulled
once before the mail arrives, so both are measured in their steady state (Frappe's first
pull of a new account is an initial sync with costs and limits of its own).
- send: `outgoing.send_communication` of `--send` replies with 1 and with 5 recipients
  through a real SMTP server (aiosmtpd).

With `--rounds R` the poll and Frappe's pull run R times, alternating, each on fresh copies
of the same messages, and each round's ratio is printed: on a shared machine the two
sides of one round see the same load. `--compare-search` runs the poll twice a round, with
and without the global search index of the tickets it stores (site config
`disable_global_search` in the poll's process), in alternating order; the index's own job,
which a worker runs after the poll's commits, is then run and timed apart.

SQL statements are the database session's own count (`SHOW SESSION STATUS 'Questions'`).
`--stored-tickets K` first bulk-inserts K tickets, ledger rows and Communications, to show
whether the per-message cost grows with what is stored. Everything created is left on the
site (use a throwaway site).
"""

import argparse
import base64
import compileall
import json
import os
import random
import subprocess
import sys
import sysconfig
import threading
import time
import uuid

import frappe

import usedesk_email

RUN_ID = uuid.uuid4().hex[:8]


def corpus(n: int, seed: int = 7) -> list[str]:
	"""N messages as text, with `{tag}` placeholders in every Message-ID domain and `{b64tag}`
	at the start of every attachment (see `tagged`)."""
	rng = random.Random(seed)
	words = "kettle order refund invoice broken delivery late screen password login account".split()
	messages = []
	for i in range(n):
		parent = rng.randrange(0, i - 1) if i % 3 == 2 and i > 3 else None
		# a reply comes from the client it answers, as in life (a stranger's opens a new ticket)
		who = (parent if parent is not None else i) % 300
		client = f"client{who}@clients.example"
		text = "\r\n".join(" ".join(rng.choice(words) for _ in range(14)) for _ in range(rng.randint(5, 40)))
		head = [
			f"From: Client {who} <{client}>",
			"To: support@shop.example",
			"Date: Thu, 26 Nov 2026 10:00:00 +0000",
			f"Message-ID: <m{i}@{{tag}}>",
			"MIME-Version: 1.0",
		]
		if parent is not None:
			head += [
				f"Subject: Re: Question {parent}",
				f"In-Reply-To: <m{parent}@{{tag}}>",
				f"References: <m{parent}@{{tag}}>",
			]
		else:
			head.append(f"Subject: Question {i}")
		html = f"<html><body><p>{text.replace(chr(13) + chr(10), '<br>')}</p></body></html>"
		if i % 2:
			body = (
				'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
				f"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
				f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--\r\n"
			)
		else:
			body = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
		if i % 10 == 5:
			attachment = base64.encodebytes(rng.randbytes(200 * 1024)).decode().replace("\n", "\r\n")
			body = (
				'Content-Type: multipart/mixed; boundary="mix"\r\n\r\n--mix\r\n'
				+ body
				+ '\r\n--mix\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
				'Content-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
				+ "{b64tag}\r\n"  # the consumer's tag, so no two mailboxes share a file
				+ attachment
				+ "--mix--\r\n"
			)
		messages.append("\r\n".join(head) + "\r\n" + body)
	return messages


def tagged(text: str, tag: str) -> bytes:
	"""A corpus message for one consumer: its Message-ID domain and attachment bytes are its own."""
	b64tag = base64.b64encode(tag.encode().ljust(48)[:48]).decode()  # 64 characters, no padding
	return text.replace("{tag}", tag).replace("{b64tag}", b64tag).encode()


def fill(server, box, messages: list[str], tag: str):
	for text in messages:
		server.deliver(box.user, tagged(text, tag))
	return box


def questions() -> int:
	return int(frappe.db.sql("SHOW SESSION STATUS LIKE 'Questions'")[0][1])


def peak_rss_mb() -> float:
	"""VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent."""
	with open("/proc/self/status") as f:
		line = next(line for line in f if line.startswith("VmHWM:"))
	return int(line.split()[1]) / 1024


class WorkerPeak:
	"""The largest VmHWM of this process's IMAP fetch workers, sampled while they run (each
	is a process of its own, so the phase's own VmHWM does not include it). VmHWM is a
	high-water mark, so a sample shortly before the worker ends holds its peak; only this
	process's children are looked at, to keep the sampling out of the measured work."""

	def __init__(self) -> None:
		self.mb = 0.0
		self._stop = threading.Event()
		self._thread = threading.Thread(target=self._sample, daemon=True)

	def __enter__(self) -> "WorkerPeak":
		self._thread.start()
		return self

	def __exit__(self, *exc_info: object) -> None:
		self._stop.set()
		self._thread.join()

	def _sample(self) -> None:
		children = f"/proc/{os.getpid()}/task/{os.getpid()}/children"  # spawned by the main thread
		while not self._stop.wait(0.05):
			with open(children) as f:
				pids = f.read().split()
			for pid in pids:
				try:
					with open(f"/proc/{pid}/cmdline", "rb") as f:
						if b"fetch_worker" not in f.read():
							continue
					with open(f"/proc/{pid}/status") as f:
						line = next(line for line in f if line.startswith("VmHWM:"))
					self.mb = max(self.mb, int(line.split()[1]) / 1024)
				except (OSError, StopIteration):
					pass


def rss_mb() -> float:
	with open("/proc/self/statm") as f:
		return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576


# ---- phases, each run in a child process ----


def phase_floor(args) -> dict:
	from usedesk_email.mail.drain import drain
	from usedesk_email.mail.imap_session import ImapSettings
	from usedesk_email.mail.parse import parse_message

	settings = ImapSettings(
		host="127.0.0.1",
		port=args.port,
		security="ssl",
		username=args.user,
		password=args.password,
		ca_file=args.ca,
		folder="INBOX",
	)
	count = 0

	def handle(message) -> bool:
		nonlocal count
		parse_message(message.raw)
		count += 1
		return True

	start_rss, start = rss_mb(), time.perf_counter()
	drain(settings, handle, time_budget=3600)
	return {"messages": count, "seconds": time.perf_counter() - start, "start_rss": start_rss}


def phase_app(args) -> dict:
	from usedesk_email.inbound.poll import poll_channel
	from usedesk_email.search_index import index_queued

	start_rss, q0, start = rss_mb(), questions(), time.perf_counter()
	runs, stored = [], 0
	with WorkerPeak() as worker:
		while True:
			t = time.perf_counter()
			outcome = poll_channel(args.channel, time_budget=args.budget)
			done = sum(outcome.get(k, 0) for k in ("stored", "duplicate", "ignored", "failed"))
			runs.append(
				{"seconds": round(time.perf_counter() - t, 1), "messages": done, "result": outcome["result"]}
			)
			stored += done
			if outcome["result"] != "ok" or not outcome.get("remaining"):
				break
	seconds, queries = time.perf_counter() - start, questions() - q0
	# the search index job the polls queued, as a worker runs it after them (timed apart)
	q1, start = questions(), time.perf_counter()
	indexed = index_queued()
	return {
		"messages": stored,
		"seconds": seconds,
		"queries": queries,
		"runs": runs,
		"start_rss": start_rss,
		"worker_peak_rss_mb": round(worker.mb, 1),
		"indexed_tickets": indexed,
		"index_seconds": round(time.perf_counter() - start, 2),
		"index_queries": questions() - q1,
	}


def phase_frappe(args) -> dict:
	account = frappe.get_doc("Email Account", args.account)
	start_rss, q0 = rss_mb(), questions()
	runs, total = [], 0
	while not args.frappe_runs or len(runs) < args.frappe_runs:
		before = frappe.db.count("Communication", {"email_account": account.name})
		t = time.perf_counter()
		account.receive()
		got = frappe.db.count("Communication", {"email_account": account.name}) - before
		runs.append({"seconds": round(time.perf_counter() - t, 1), "messages": got})
		total += got
		if not got:
			runs.pop()
			break
	return {
		"messages": total,
		"seconds": sum(r["seconds"] for r in runs),
		"queries": questions() - q0,
		"runs": runs,
		"start_rss": start_rss,
	}


def phase_send(args) -> dict:
	from usedesk_email.outbound.delivery import send_communication

	names = json.loads(args.communications)
	start_rss, q0, start = rss_mb(), questions(), time.perf_counter()
	for name in names:
		send_communication(name)
	seconds = time.perf_counter() - start
	statuses = frappe.get_all("Communication", filters={"name": ("in", names)}, pluck="delivery_status")
	return {
		"messages": len(names),
		"seconds": seconds,
		"queries": questions() - q0,
		"sent": statuses.count("Sent"),
		"start_rss": start_rss,
	}


PHASES = {"floor": phase_floor, "app": phase_app, "frappe": phase_frappe, "send": phase_send}


def child(args) -> None:
	if args.phase != "floor":
		frappe.init(site=args.site, sites_path=".")
		frappe.connect()
		if args.no_search:
			frappe.local.conf.disable_global_search = 1  # what the poll did before the index
	if args.profile:
		import cProfile

		profiler = cProfile.Profile()
		result = profiler.runcall(PHASES[args.phase], args)
		profiler.dump_stats(f"{args.profile}.{args.phase}")
	else:
		result = PHASES[args.phase](args)
	result["peak_rss_mb"] = round(peak_rss_mb(), 1)
	result["rss_growth_mb"] = round(result["peak_rss_mb"] - result.pop("start_rss"), 1)
	print("RESULT " + json.dumps(result))


def run_child(phase: str, **values) -> dict:
	argv = [sys.executable, os.path.abspath(__file__), "--phase", phase]
	for key, value in values.items():
		argv += [f"--{key.replace('_', '-')}", str(value)]
	done = subprocess.run(argv, capture_output=True, text=True)
	lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
	if done.returncode or not lines:
		raise SystemExit(f"phase {phase} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
	return json.loads(lines[-1][len("RESULT ") :])


# ---- set-up in the parent ----


def make_channel(server, box, name: str, **values):
	from usedesk_email.testing.desk import dovecot_channel

	return dovecot_channel(server, box, name, imap_email="support@shop.example", **values)


def make_email_account(server, box, tag: str) -> str:
	doc = frappe.get_doc(
		{
			"doctype": "Email Account",
			"email_account_name": f"bench {tag}",
			"email_id": f"bench-{tag}@shop.example",
			"login_id_is_different": 1,
			"login_id": box.user,
			"password": box.password,
			"awaiting_password": 0,
			"enable_incoming": 1,
			"use_imap": 1,
			"email_server": server.host,
			"incoming_port": server.no_tls_port,
			"use_ssl": 0,
			"use_starttls": 0,
			"email_sync_option": "UNSEEN",
			"enable_outgoing": 0,
			"imap_folder": [{"folder_name": "INBOX"}],
		}
	).insert(ignore_permissions=True)
	# The first pull of a new account is its initial sync: it marks every stored Email
	# Communication of the account (a scan of the whole table) and takes only the newest
	# `initial_sync_count` messages. Done here on the empty mailbox, so the measured runs
	# are the steady state: UNSEEN, at most 100 messages a run.
	doc.receive()
	frappe.db.commit()
	return doc.name


def store_tickets(channel: str, count: int) -> None:
	"""Bulk rows as ingestion leaves them: a ticket, its ledger row and its Communication."""
	from frappe.utils import now_datetime

	from usedesk_email.inbound.store import dedupe_key

	now = now_datetime()
	stamp = {"creation": now, "modified": now, "owner": "Administrator", "modified_by": "Administrator"}
	first = int(frappe.db.sql("SELECT COALESCE(MAX(name), 0) FROM `tabTicket`")[0][0]) + 1
	for start in range(0, count, 5000):
		names = range(first + start, first + min(start + 5000, count))
		client = {n: f"old{n % 5000}@clients.example" for n in names}
		message_id = {n: f"old{n}-{RUN_ID}@clients.example" for n in names}
		bulk(
			"Ticket",
			[
				{"name": n, "subject": f"Stored {n}", "status": "Open", "channel": channel}
				| {"client_email": client[n], "opened_at": now, **stamp}
				for n in names
			],
		)
		bulk(
			"Communication",
			[
				{
					"name": f"bench-{RUN_ID}-{n}",
					"communication_type": "Communication",
					"communication_medium": "Email",
				}
				| {"sent_or_received": "Received", "subject": f"Stored {n}", "content": "<p>old</p>"}
				| {"sender": client[n], "message_id": message_id[n], "reference_doctype": "Ticket"}
				| {"reference_name": str(n), "communication_date": now, **stamp}
				for n in names
			],
		)
		bulk(
			"Email Channel Message",
			[
				{"name": f"bench-{RUN_ID}-{n}", "channel": channel, "dedupe_key": dedupe_key(message_id[n])}
				| {"message_id": message_id[n], "direction": "Incoming", "ticket": str(n)}
				| {"communication": f"bench-{RUN_ID}-{n}", "outcome": "stored", **stamp}
				for n in names
			],
		)
		frappe.db.commit()
	# Rows written around Frappe's naming: move the ticket number sequence past them.
	frappe.db.sql("SELECT SETVAL(`ticket_id_seq`, %s)", (first + count,))
	frappe.db.commit()


def bulk(doctype: str, rows: list[dict]) -> None:
	fields = list(rows[0])
	frappe.db.bulk_insert(doctype, fields, [tuple(row[f] for f in fields) for row in rows])


def prepare_replies(server, box, smtp, count: int, recipients: int) -> list[str]:
	from usedesk_email.inbound.batch import ingest_raw
	from usedesk_email.outbound.replies import create_reply

	channel = make_channel(
		server,
		box,
		f"bench send {recipients} {RUN_ID}",
		outgoing_type="External",
		from_email="support@shop.example",
		smtp_host=smtp.host,
		smtp_port=smtp.port,
		smtp_encryption="None",
		smtp_use_imap_credentials=0,
		smtp_username="bench",
		smtp_password="bench-pass",
		display_quote=1,
	)
	cc = ", ".join(f"cc{k}@clients.example" for k in range(recipients - 1)) or None
	names = []
	for i in range(count):
		raw = tagged(corpus(1, seed=i)[0], f"send{recipients}-{i}-{RUN_ID}.example")
		if cc:
			raw = raw.replace(
				b"To: support@shop.example", f"To: support@shop.example\r\nCc: {cc}".encode(), 1
			)
		ticket = ingest_raw(channel, raw, "bench").ticket
		names.append(create_reply(str(ticket), f"<p>Answer {i}: we are on it.</p>")["communication"])
	frappe.db.commit()
	return names


def rate(result: dict) -> float:
	return result["messages"] / result["seconds"] if result["seconds"] else 0


def per_message(result: dict) -> str:
	"""SQL statements per message."""
	return (
		f"{result['queries'] / result['messages']:.2f}"
		if result.get("queries") and result["messages"]
		else "-"
	)


def report(rows: list[tuple[str, dict]], n: int) -> None:
	print(f"\nN = {n} messages, {os.cpu_count()} CPUs, run {RUN_ID}\n")
	print(
		"| what | messages | seconds | messages/s | SQL statements/message | peak RSS MB | RSS growth MB"
		" | fetch worker peak RSS MB |"
	)
	print("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for label, r in rows:
		per = per_message(r)
		print(
			f"| {label} | {r['messages']} | {r['seconds']:.1f} | {rate(r):.1f} | {per} | {r['peak_rss_mb']}"
			f" | {r['rss_growth_mb']} | {r.get('worker_peak_rss_mb', '-')} |"
		)
	for label, r in rows:
		if r.get("runs"):
			print(f"{label} runs: {r['runs']}")


def main() -> None:
	parser = argparse.ArgumentParser(
		description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
	)
	parser.add_argument("--site", default="test.localhost")
	parser.add_argument("--n", type=int, default=1000)
	parser.add_argument("--stored-tickets", type=int, default=0)
	parser.add_argument("--frappe-runs", type=int, default=0, help="0: until the mailbox is drained")
	parser.add_argument("--send", type=int, default=0, help="replies per recipient count to send")
	parser.add_argument("--skip", default="", help="comma-separated phases to leave out")
	parser.add_argument("--budget", type=float, default=240)
	parser.add_argument(
		"--rounds", type=int, default=1, help="poll and Frappe pull, alternating, this many times"
	)
	parser.add_argument("--profile", help="write each phase's cProfile stats to PROFILE.<phase>")
	parser.add_argument(
		"--compare-search", action="store_true", help="the poll with and without the search index"
	)
	for name in (
		"phase",
		"port",
		"user",
		"password",
		"ca",
		"channel",
		"account",
		"communications",
		"no_search",
	):
		parser.add_argument(f"--{name.replace('_', '-')}")
	args = parser.parse_args()
	if args.phase:
		args.port = int(args.port) if args.port else None
		args.no_search = args.no_search == "1"
		return child(args)

	from usedesk_email.inbound.poll import poll_channel
	from usedesk_email.testing.dovecot import DovecotServer
	from usedesk_email.testing.smtp_server import SmtpTestServer

	skip = set(args.skip.split(","))
	for path in (
		sysconfig.get_paths()["purelib"],
		*(os.path.dirname(p.__file__) for p in (frappe, usedesk_email)),
	):
		# A production bench has its bytecode; without it (PYTHONDONTWRITEBYTECODE, editable
		# installs, uv's installs) each phase would first compile what it imports.
		compileall.compile_dir(path, quiet=1, workers=os.cpu_count() or 1)
	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	messages = corpus(args.n)
	rows = []
	with DovecotServer() as server, SmtpTestServer(security="none", users={"bench": "bench-pass"}) as smtp:
		common = {"site": args.site, "budget": args.budget, "frappe_runs": args.frappe_runs}
		if args.profile:
			common["profile"] = os.path.abspath(args.profile)
		if "floor" not in skip:
			box = fill(server, server.new_mailbox("bench"), messages, f"floor-{RUN_ID}.example")
			rows.append(
				(
					"floor: IMAP fetch + parse",
					run_child(
						"floor",
						port=server.ssl_port,
						user=box.user,
						password=box.password,
						ca=server.ca_file,
						**common,
					),
				)
			)
		ratios, search_costs = [], []
		for round_no in range(1, args.rounds + 1):
			tag = f"{RUN_ID}-{round_no}"
			suffix = f", round {round_no}" if args.rounds > 1 else ""
			app = frappe_pull = unindexed = None
			searches = [True]
			if args.compare_search:  # which goes first alternates from round to round
				searches = [False, True] if round_no % 2 else [True, False]
			for search in searches if "app" not in skip else []:
				variant = f"{tag}-{'search' if search else 'nosearch'}"
				box = server.new_mailbox("bench")
				channel = make_channel(server, box, f"bench app {variant}").name
				poll_channel(channel)  # connected before the mail comes, like Frappe's account below
				fill(server, box, messages, f"app-{variant}.example")
				if args.stored_tickets and round_no == 1 and search == searches[0]:
					store_tickets(channel, args.stored_tickets)
				frappe.db.commit()
				result = run_child("app", channel=channel, no_search=0 if search else 1, **common)
				label = f"usedesk_email poll ({args.stored_tickets} tickets stored before)"
				if args.compare_search:
					label += ", search index " + ("on" if search else "off")
				rows.append((label + suffix, result))
				if search:
					app = result
				else:
					unindexed = result
			if app and unindexed:
				search_costs.append((app, unindexed))
			if "frappe" not in skip:
				box = server.new_mailbox("bench")
				account = make_email_account(server, box, tag)
				fill(server, box, messages, f"frappe-{tag}.example")
				label = "Frappe Email Account pull" + (
					f" (first {args.frappe_runs} runs)" if args.frappe_runs else ""
				)
				frappe_pull = run_child("frappe", account=account, **common)
				rows.append((label + suffix, frappe_pull))
			if app and frappe_pull and frappe_pull["messages"]:
				ratios.append(rate(app) / rate(frappe_pull))
		if args.send:
			box = server.new_mailbox("bench-send")
			for recipients in (1, 5):
				names = prepare_replies(server, box, smtp, args.send, recipients)
				result = run_child("send", communications=json.dumps(names), **common)
				rows.append((f"send replies, {recipients} recipient(s) each", result))
	report(rows, args.n)
	for indexed, unindexed in search_costs:
		print(
			f"search index, one round: the poll {rate(indexed):.1f} messages/s with it, {rate(unindexed):.1f} "
			f"without, SQL per message {per_message(indexed)} with it, {per_message(unindexed)} without; "
			f"then its job: {indexed['indexed_tickets']} tickets in {indexed['index_seconds']} s, "
			f"{indexed['index_queries'] / indexed['messages']:.2f} SQL per message"
		)
	if ratios:
		ratios.sort()
		print(
			f"poll / Frappe pull, messages per second, each round side by side: "
			f"{', '.join(f'{r:.1f}x' for r in ratios)} (median {ratios[len(ratios) // 2]:.1f}x)"
		)


if __name__ == "__main__":
	main()
