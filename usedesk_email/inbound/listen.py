"""The real-time listener (`bench --site S usedesk-email listen`): mail becomes a ticket
seconds after it arrives instead of at the next 5-minute poll.

It holds channels by lease (`leases.py`: any number of listeners, on any machines, share
them) and keeps one IMAP IDLE connection per held External or Office 365 channel, each in
a thread of its own (the engine's `Watcher`). When a server announces mail, the listener
enqueues that channel's usual poll job (same job id, deduplicated), so storing, exactly-once
and \\Seen after commit stay the poll's; mail announced while that channel's poll runs gets
a new poll when it ends. The scheduled poll stays the safety net for every channel, and the
only way in for servers without IDLE.

Only the main thread touches the database: watcher threads put what they report into a
queue. Every few seconds the main thread renews its leases, takes its share of the free
channels, lets go of channels disabled, deleted or taken over, reconnects channels whose
settings changed, renews Office 365 tokens before they expire, and it writes each channel's
state (Live or Polling, last mail event, last error) without touching `modified`.
"""

import logging
import math
import os
import queue
import random
import secrets
import signal
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

import frappe
from frappe import _
from frappe.utils import now_datetime
from rq.job import JobStatus

from usedesk_email.channel.config import ca_file, imap_settings
from usedesk_email.channel.kinds import OFFICE_365
from usedesk_email.channel.oauth import REFRESH_MARGIN, token_expires_in
from usedesk_email.db import as_text, database_now, safe_values
from usedesk_email.engine_errors import described
from usedesk_email.inbound import leases
from usedesk_email.inbound.leases import LIVE, POLLING
from usedesk_email.inbound.poll import enqueue_poll, poll_job_status, record_failure
from usedesk_email.mail import idle
from usedesk_email.mail.errors import (
	AuthenticationError,
	ConfigError,
	MailConnectionError,
	MailError,
	redact,
)

TICK = 5.0  # seconds between rounds (leases, changed channels, tokens)
PENDING_RECHECK = 0.5  # seconds between looks at a running poll that new mail waits for
TOKEN_AHEAD = REFRESH_MARGIN + 60  # an Office 365 token is renewed this long before it expires
RETRY_TOKEN = 60.0  # seconds before asking an unreachable token endpoint again
STOP_WAIT = 5.0  # seconds a watcher gets to say DONE and LOGOUT

log = logging.getLogger("usedesk_email.listen")


@dataclass
class Held:
	"""A channel this listener holds."""

	name: str
	modified: datetime
	watcher: idle.Watcher | None = None
	files: ExitStack = field(default_factory=ExitStack)  # keeps the channel's CA file
	ca_path: str | None = None
	generation: int = 0  # which watcher's reports count: those of the current one
	state: str = ""  # the live_state last written
	parked: bool = False  # login refused or settings unusable: wait for a change or a good poll
	retried: bool = False  # Office 365: a refused token was replaced once already
	refresh_at: float | None = None  # monotonic time to renew the token (or to try again)


class Listener:
	def __init__(self) -> None:
		self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
		self.held: dict[str, Held] = {}
		self.reports: queue.SimpleQueue = queue.SimpleQueue()
		self.pending: set[str] = set()  # channels whose mail waits for a running poll to end
		self.renewed_at = time.monotonic()
		self.stopping = False

	def run(self) -> None:
		log.info("listener %s started on site %s", self.holder, frappe.local.site)
		next_round = 0.0
		try:
			while not self.stopping:
				if time.monotonic() >= next_round:
					self.round()
					next_round = time.monotonic() + TICK
				self.handle_reports(next_round)
		finally:
			self.shutdown()

	def stop(self, *_signal) -> None:
		"""Safe in a signal handler: the main loop ends at its next wake-up."""
		self.stopping = True
		self.reports.put(None)

	def shutdown(self) -> None:
		watchers = [held.watcher for held in self.held.values() if held.watcher]
		for watcher in watchers:
			watcher.stop(wait=0)
		deadline = time.monotonic() + STOP_WAIT  # all say DONE and LOGOUT at once
		for watcher in watchers:
			watcher.join(max(0.0, deadline - time.monotonic()))
		for held in self.held.values():
			held.files.close()
		self.held.clear()
		try:
			frappe.db.rollback()
			leases.unregister(self.holder)
		except Exception:
			log.exception("listener %s: could not give its channels back; their leases run out", self.holder)
		log.info("listener %s stopped", self.holder)

	# -- rounds: leases, changes, tokens --------------------------------------------------

	def round(self) -> None:
		try:
			self.keep_leases()
		except Exception:
			log.exception("listener %s: a round failed", self.holder)
			reconnect_database()
		if self.held and time.monotonic() - self.renewed_at > leases.LEASE.total_seconds() - TICK:
			log.warning("listener %s: leases not renewed in time, letting go of every channel", self.holder)
			for name in list(self.held):
				self.drop(name)

	def keep_leases(self) -> None:
		frappe.db.rollback()  # a fresh snapshot: others changed the rows meanwhile
		now = database_now()
		rows = {row.name: row for row in leases.polled_channels()}
		mine = set(leases.renew(self.holder, now))
		self.renewed_at = time.monotonic()
		for name in list(self.held):
			if name not in mine or name not in rows:  # taken over, disabled, deleted or renamed
				self.drop(name, release=name in mine)
		for name in mine - set(self.held):
			if name in rows:  # a channel renamed while held keeps its lease
				self.take(rows[name])
			else:
				leases.release(self.holder, [name])
		listeners = leases.heartbeat(self.holder, now, len(self.held), self.live_count())
		self.balance(rows, now, share=math.ceil(len(rows) / max(listeners, 1)))
		for name, held in list(self.held.items()):
			self.follow_changes(held, rows[name])
		leases.mark_unheld(now)

	def balance(self, rows: dict, now: datetime, share: int) -> None:
		"""Take free channels up to this listener's share; give back what is above it."""
		free = [name for name, row in rows.items() if name not in self.held and leases.is_free(row, now)]
		if len(self.held) < share and free:
			random.shuffle(free)  # listeners starting together try different channels first
			for name in leases.claim(self.holder, free[: share - len(self.held)], now):
				self.take(rows[name])
		elif len(self.held) > share:
			excess = sorted(self.held, key=lambda n: (self.held[n].state != LIVE, n))[share:]
			for name in excess:
				self.drop(name, release=True)
			log.info("listener %s: left %d channels to the other listeners", self.holder, len(excess))

	def live_count(self) -> int:
		return sum(held.state == LIVE for held in self.held.values())

	def take(self, row) -> None:
		held = self.held[row.name] = Held(row.name, row.modified)
		log.info("listener %s: took channel %s", self.holder, row.name)
		if row.consecutive_failures and row.next_poll_after and row.next_poll_after > now_datetime():
			held.parked = True  # the poll backs off after refused logins: so does the listener
			self.write(held, live_state=POLLING)
		else:
			self.connect(held)

	def drop(self, name: str, release: bool = False) -> None:
		"""Stop watching a channel; `release` gives its lease back (it shows Polling until
		another listener takes it). A channel taken over is left as its new holder wrote it."""
		held = self.held.pop(name)
		self.pending.discard(name)
		self.stop_watcher(held)
		held.files.close()
		if release:
			leases.release(self.holder, [name])
		log.info("listener %s: let go of channel %s", self.holder, name)

	def follow_changes(self, held: Held, row) -> None:
		if row.modified != held.modified:  # saved in the desk: new settings, new connection
			log.info("listener %s: channel %s changed, connecting again", self.holder, held.name)
			self.stop_watcher(held)
			held.modified, held.parked, held.retried = row.modified, False, False
			self.connect(held)
		elif held.parked and not row.consecutive_failures:  # a poll logged in since: so can we
			held.parked, held.retried = False, False
			self.connect(held)
		elif not held.parked and held.refresh_at is not None and time.monotonic() >= held.refresh_at:
			self.connect(held, force_refresh=True)

	def connect(self, held: Held, force_refresh: bool = False) -> None:
		"""Start the channel's watcher, or hand it new settings (a renewed token). What fails
		before a connection (no token, an unreachable token endpoint) is recorded here."""
		doc = frappe.get_doc("Email Channel", held.name)
		try:
			if held.watcher is None:
				held.files.close()
				held.files = ExitStack()
				held.ca_path = held.files.enter_context(ca_file(doc))
			settings = imap_settings(doc, held.ca_path, force_refresh)
			held.refresh_at = None
			if doc.incoming_type == OFFICE_365:
				held.refresh_at = time.monotonic() + max(token_expires_in(doc) - TOKEN_AHEAD, TICK)
		except MailConnectionError as error:  # the token endpoint: ask again soon, keep what runs
			held.refresh_at = time.monotonic() + RETRY_TOKEN
			self.write(held, listener_error=described(error))
			return
		except MailError as error:
			self.park(held, doc, error)
			return
		except frappe.ValidationError as error:
			self.park(held, doc, ConfigError(str(error)))
			return
		frappe.db.commit()  # a renewed token is saved in the Token Cache
		if held.watcher is None:
			held.generation += 1
			report = self.reporter(held.name, held.generation)
			held.watcher = idle.Watcher(settings, report, name=held.name).start()
		else:
			held.watcher.reconnect(settings)

	def park(self, held: Held, doc, error: MailError) -> None:
		"""A refused login or unusable settings: counted (and backed off) as the poll's own;
		the listener tries again once the channel is saved or a poll has logged in."""
		frappe.db.rollback()
		self.stop_watcher(held)
		held.parked, held.refresh_at = True, None
		message = redact(described(error), doc.get_password("imap_password", raise_exception=False))
		record_failure(doc, error, live_state=POLLING, listener_error=as_text(message))
		held.state = POLLING
		log.warning("listener %s: channel %s waits for new settings: %s", self.holder, held.name, message)

	def stop_watcher(self, held: Held) -> None:
		"""Its thread logs out on its own: a server that hangs must not hold up the rounds."""
		if held.watcher is not None:
			held.watcher.stop(wait=0)
			held.watcher = None

	# -- what the watchers report ---------------------------------------------------------

	def reporter(self, name: str, generation: int):
		def report(kind: str, error: MailError | None) -> None:
			self.reports.put((name, generation, kind, error))

		return report

	def handle_reports(self, until: float) -> None:
		"""Work through the watchers' reports until the next round is due."""
		while not self.stopping and (left := until - time.monotonic()) > 0:
			try:
				report = self.reports.get(timeout=min(left, PENDING_RECHECK) if self.pending else left)
			except queue.Empty:
				report = None
			try:
				if report is not None:
					self.handle(*report)
			except Exception:
				log.exception("listener %s: handling %s failed", self.holder, report)
				reconnect_database()
			self.request_polls()

	def handle(self, name: str, generation: int, kind: str, error: MailError | None) -> None:
		held = self.held.get(name)
		if held is None or held.watcher is None or held.generation != generation:
			return  # from a watcher stopped meanwhile
		if kind == idle.LIVE:
			held.retried = False
			self.write(held, live_state=LIVE)
		elif kind == idle.MAIL:
			self.pending.add(name)  # until its poll is queued, right after this
			self.write(held, last_event_at=now_datetime())
		elif kind == idle.DROPPED:
			self.write(held, live_state=POLLING, listener_error=described(error))
		elif kind == idle.NO_IDLE:
			message = _("The server does not offer IMAP IDLE: the channel is polled every 5 minutes.")
			self.write(held, live_state=POLLING, listener_error=message)
		elif kind == idle.FAILED:
			doc = frappe.get_doc("Email Channel", name)
			if (
				isinstance(error, AuthenticationError)
				and doc.incoming_type == OFFICE_365
				and not held.retried
			):
				held.retried = True  # the token may have been revoked early: one fresh one
				self.connect(held, force_refresh=True)
			else:
				self.park(held, doc, error)

	def request_polls(self) -> None:
		"""A poll job for each channel with new mail, unless one is queued (it will see the
		mail). A channel whose poll runs (it may have searched before the mail came) stays in
		`pending` until that one ends; so does every channel while the queue cannot be reached."""
		for name in list(self.pending):
			try:
				status = poll_job_status(name)
				if status != JobStatus.STARTED:
					if status != JobStatus.QUEUED:
						enqueue_poll(name)
					self.pending.discard(name)
			except Exception as error:
				log.warning("listener %s: cannot queue polls now (%s); trying again", self.holder, error)
				return

	def write(self, held: Held, **values) -> None:
		"""The listener's fields of the channel, without `modified` (open forms stay valid);
		an error's text (a server's words) as plain text, as a form would store it."""
		if values.get("live_state") == held.state:
			del values["live_state"]
		if not values:
			return
		frappe.db.set_value(
			"Email Channel", held.name, safe_values("Email Channel", values), update_modified=False
		)
		frappe.db.commit()
		held.state = values.get("live_state", held.state)


def reconnect_database() -> None:
	"""After a failed statement: roll back, or connect again when the connection is gone."""
	try:
		frappe.db.rollback()
	except Exception:
		try:
			frappe.db.connect()
		except Exception:
			log.exception("the database does not answer; trying again next round")


def run(site: str) -> None:
	"""Listen until SIGTERM or SIGINT; then every channel is given back at once."""
	logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
	frappe.init(site=site)
	frappe.connect()
	try:
		listener = Listener()
		signal.signal(signal.SIGTERM, listener.stop)
		signal.signal(signal.SIGINT, listener.stop)
		listener.run()
	finally:
		frappe.destroy()
