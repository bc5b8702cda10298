"""The scheduled unread poll: one background job per polled channel, never two at once.

The engine fetches with BODY.PEEK[] and sets \\Seen only on messages already committed
(one commit per IMAP batch); a crash anywhere leaves the rest unread for the next run, and
the ledger's unique index turns a re-fetched message into a duplicate instead of a second copy.
For a backlog, a worker process holds the IMAP session and parses the next batch while this
one is stored; a few messages (what the real-time listener's polls mostly find) are fetched
and parsed in the job itself, which is quicker than starting that process.
"""

from datetime import timedelta

import frappe
from frappe.utils import now_datetime
from frappe.utils.background_jobs import get_job

from usedesk_email.channel.config import ca_file, imap_settings
from usedesk_email.channel.kinds import OWN_SERVER
from usedesk_email.channel.oauth import with_fresh_token
from usedesk_email.db import as_text, database_now, named_lock
from usedesk_email.engine_errors import described
from usedesk_email.inbound.batch import IngestBatch
from usedesk_email.inbound.leases import mark_unheld
from usedesk_email.mail.drain import drain
from usedesk_email.mail.errors import AuthenticationError, MailError, redact
from usedesk_email.mail.imap_session import FetchedMessage
from usedesk_email.mail.parse import parse_message

TIME_BUDGET = 240  # seconds of one poll; the scheduler runs every 5 minutes
WORKER_FROM = 10  # unread messages from which a worker process fetches and parses them
AUTH_FAILURES_BEFORE_BACKOFF = 3
MAX_BACKOFF = timedelta(hours=6)


def enqueue_polls() -> None:
	"""Scheduler entry: enqueue a poll for every enabled polled channel not backing off (the
	safety net under the real-time listener), and show Polling where no listener holds a
	channel any more."""
	mark_unheld(database_now())
	now = now_datetime()
	for channel in frappe.get_all(
		"Email Channel",
		filters={"enabled": 1, "incoming_type": ("in", OWN_SERVER)},
		fields=["name", "next_poll_after"],
	):
		if channel.next_poll_after and channel.next_poll_after > now:
			continue
		enqueue_poll(channel.name)


def enqueue_poll(channel: str) -> str:
	"""Queue the channel's poll unless it is queued or running already (one job id per channel)."""
	job_id = poll_job_id(channel)
	frappe.enqueue(
		"usedesk_email.inbound.poll.poll_channel",
		queue="long",
		timeout=TIME_BUDGET + 300,
		job_id=job_id,
		deduplicate=True,
		channel=channel,
	)
	return job_id


def poll_job_id(channel: str) -> str:
	return f"usedesk_email:poll:{channel}"


def poll_job_status(channel: str) -> str | None:
	"""The state of the channel's poll job in the queue ("queued", "started", "finished"...)."""
	job = get_job(poll_job_id(channel))
	return job.get_status() if job else None


def poll_channel(channel: str, time_budget: float = TIME_BUDGET) -> dict:
	"""One poll of one channel; returns what it did, and records it on the channel's health."""
	with named_lock("usedesk_poll", channel) as acquired:
		if not acquired:
			return {"result": "busy"}
		doc = frappe.get_doc("Email Channel", channel)
		counts = {"stored": 0, "duplicate": 0, "ignored": 0, "failed": 0}
		batch = IngestBatch(doc)

		def handle(message: FetchedMessage) -> bool:
			batch.add(message.raw, f"IMAP UID {message.uid}", parsed=message.prepared)
			return True

		def commit() -> None:
			for result in batch.commit():
				counts[result.outcome.split(":")[0]] += 1

		try:
			with ca_file(doc) as ca, batch:
				result = with_fresh_token(
					doc.incoming_type,
					lambda refresh: drain(
						imap_settings(doc, ca, refresh),
						handle,
						known_uidvalidity=int(doc.uidvalidity) if doc.uidvalidity else None,
						time_budget=time_budget,
						commit=commit,  # once per batch, before it is marked read
						prepare=parse_message,  # in a worker process, a batch ahead of the storing
						worker_from=WORKER_FROM,
						begin_batch=lambda messages: batch.expect(
							[m.prepared for m in messages if m.prepared]
						),
					),
				)
		except MailError as e:
			record_failure(doc, e)
			return {"result": "error", "error": str(e), **counts}
		record_success(doc, result, counts)
		return {
			"result": "ok",
			"remaining": result.remaining,
			"uidvalidity_changed": result.uidvalidity_changed,
			**counts,
		}


def record_success(doc, result, counts: dict) -> None:
	summary = frappe._("{0} new, {1} duplicates, {2} ignored, {3} failed; {4} left for the next run").format(
		counts["stored"], counts["duplicate"], counts["ignored"], counts["failed"], result.remaining
	)
	if result.uidvalidity_changed:
		summary += "; " + frappe._("the mailbox's UIDVALIDITY changed")
	update_health(
		doc.name,
		last_result=summary[:140],
		last_error="",
		consecutive_failures=0,
		next_poll_after=None,
		uidvalidity=str(result.uidvalidity),
		messages_ingested=(frappe.db.get_value("Email Channel", doc.name, "messages_ingested") or 0)
		+ counts["stored"],
	)


def record_failure(doc, error: MailError, **values) -> None:
	"""Authentication failures back off; transient errors are retried on the next run as usual.
	`values`: more health fields to write with it (the real-time listener's)."""
	failures = (frappe.db.get_value("Email Channel", doc.name, "consecutive_failures") or 0) + 1
	next_poll_after = None
	if isinstance(error, AuthenticationError) and failures >= AUTH_FAILURES_BEFORE_BACKOFF:
		delay = timedelta(minutes=5 * 2 ** (failures - AUTH_FAILURES_BEFORE_BACKOFF))
		next_poll_after = now_datetime() + min(delay, MAX_BACKOFF)
	update_health(
		doc.name,
		last_result=frappe._("Error"),
		# a server's words, shown by the form as HTML: stored as plain text, as a form stores it
		last_error=as_text(
			redact(described(error), doc.get_password("imap_password", raise_exception=False))
		),
		consecutive_failures=failures,
		next_poll_after=next_poll_after,
		**values,
	)


def update_health(channel: str, **values) -> None:
	frappe.db.set_value(
		"Email Channel", channel, {"last_poll_at": now_datetime(), **values}, update_modified=False
	)
	frappe.db.commit()
