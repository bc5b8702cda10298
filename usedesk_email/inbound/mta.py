"""The MTA pipe transport for Internal channels: one message on standard input.

The exit status is what the MTA acts on (sysexits.h): 0 delivered, 65 refused (not mail or
too large; the MTA bounces it), 67 unknown recipient (bounced), 75 temporary failure (the
MTA keeps the message and retries). Anything unexpected is 75: a retry may lose time, never mail.

What the command prints on standard error goes into the MTA's log and, for a refusal or a
deferral that finally expires, into the bounce the sender gets: it says only what a sender
may know (too large, unknown address, try again later). The reason behind a temporary
failure (a database error names the database user) goes to the site's log
(logs/usedesk_email.log) instead.
"""

import sys

import click
import frappe

from usedesk_email.inbound.endpoint import MessageTooLarge, NotMail, UnknownRecipient, accept, summary
from usedesk_email.inbound.postfix_config import PIPE_HEADROOM
from usedesk_email.mail.routing import split_addresses
from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import (
	max_message_bytes,
)

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75
# Not translated: it is said when the database (and so the translations) may be unreachable.
TRY_LATER = "the helpdesk cannot take this message now; try again later"
# Past this much the rest of an oversized message is not even counted.
COUNT_AT_MOST = 1024 * 1024 * 1024
CHUNK = 1024 * 1024


def deliver_stdin(site: str, recipients: list[str]) -> int:
	try:
		frappe.init(site=site)
		frappe.connect()
	except Exception:
		log_reason(f"site {site} is not reachable")
		return fail(EX_TEMPFAIL, TRY_LATER)
	try:
		return deliver_connected(recipients)
	finally:
		frappe.destroy()


def read_message(stream, limit: int) -> tuple[bytes, int, bool]:
	"""At most limit + 1 bytes of the message, its size, and whether that size is exact.

	The rest of an oversized message is read and counted but not kept, so a refusal can
	name the real size (up to COUNT_AT_MOST).
	"""
	raw = stream.read(limit + 1)
	size = len(raw)
	if size <= limit:
		return raw, size, True
	while size <= COUNT_AT_MOST:
		chunk = stream.read(CHUNK)
		if not chunk:
			return raw, size, True
		size += len(chunk)
	return raw, size, False


def deliver_connected(recipients: list[str]) -> int:
	try:
		# What the MTA let through (the cap plus its trace headers) is never refused for size.
		limit = max_message_bytes() + PIPE_HEADROOM
		raw, size, exact = read_message(sys.stdin.buffer, limit)
		explicit = [a for value in recipients for a in split_addresses(value)]
		channel, result = accept(
			raw, explicit, source="bench deliver", check_auth=False, size=(size, exact), limit=limit
		)
	except (MessageTooLarge, NotMail) as exc:
		return fail(EX_DATAERR, str(exc))
	except UnknownRecipient as exc:
		return fail(EX_NOUSER, str(exc))
	except Exception:
		log_reason("delivery failed")
		return fail(EX_TEMPFAIL, TRY_LATER)
	outcome = summary(channel, result)
	if result.outcome == "failed":
		click.echo(f"kept for an admin to retry: Email Channel Failure {result.failure}", err=True)
	click.echo(" ".join(f"{k}={v}" for k, v in outcome.items() if v not in (None, False)))
	return EX_OK


def fail(code: int, message: str) -> int:
	click.echo(f"usedesk-email deliver: {message}", err=True)
	return code


def log_reason(what: str) -> None:
	"""The traceback of a temporary failure, for the admin, in the site's (or bench's) log."""
	try:
		frappe.logger("usedesk_email", allow_site=bool(getattr(frappe.local, "site", None))).error(
			f"usedesk-email deliver: {what}", exc_info=True
		)
	except Exception:
		pass  # logging must not turn a deferral into a crash; the MTA keeps the message
