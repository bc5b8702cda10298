"""`bench --site S usedesk-email deliver`: the MTA pipe transport for Internal channels.

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
from frappe import _
from frappe.commands import get_site, pass_context

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


@click.group("usedesk-email")
def usedesk_email():
	"""Helpdesk e-mail channel commands."""


@usedesk_email.command("deliver")
@click.option(
	"--recipient",
	"recipients",
	multiple=True,
	help="Envelope recipient (Postfix: ${recipient}); repeat for several.",
)
@pass_context
def deliver(context, recipients: tuple[str, ...]):
	"""Deliver one message from standard input to the channel it was addressed to."""
	sys.exit(deliver_stdin(get_site(context), list(recipients)))


# Not translated: it is said when the database (and so the translations) may be unreachable.
TRY_LATER = "the helpdesk cannot take this message now; try again later"
# Past this much the rest of an oversized message is not even counted.
COUNT_AT_MOST = 1024 * 1024 * 1024
CHUNK = 1024 * 1024


@usedesk_email.command("postfix-config")
@pass_context
def postfix_config(context):
	"""Print the Postfix set-up for this bench and site, and write its recipient table."""
	from usedesk_email.postfix import refresh_recipient_table, setup_warnings, site_setup
	from usedesk_email.postfix_config import config_block

	site = get_site(context)
	frappe.init(site=site)
	frappe.connect()
	try:
		setup = site_setup()
		click.echo(config_block(setup), nl=False)
		if not refresh_recipient_table():
			click.echo(
				"# " + _("postmap was not found: install Postfix, then run this command again."), err=True
			)
		for warning in setup_warnings(setup):
			click.echo("# " + _("Warning: {0}").format(warning), err=True)
	finally:
		frappe.destroy()


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
	from usedesk_email.inbound import MessageTooLarge, NotMail, UnknownRecipient, accept, summary
	from usedesk_email.mail.routing import split_addresses
	from usedesk_email.postfix_config import PIPE_HEADROOM
	from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import (
		max_message_bytes,
	)

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


@usedesk_email.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def purge(context, yes: bool):
	"""Delete every ticket, its messages and their files (on disk too), e.g. before uninstall-app.

	Without it uninstall-app keeps the messages and files as the customer's history.
	"""
	from usedesk_email.uninstall import purge_conversations, ticket_messages_count

	frappe.init(site=get_site(context))
	frappe.connect()
	try:
		counts = ticket_messages_count()
		question = (
			f"Delete all tickets with {counts['communications']} messages and {counts['files']} files "
			f"on {frappe.local.site}? This cannot be undone"
		)
		if not yes and not click.confirm(question):
			click.echo("Nothing deleted.")
			sys.exit(1)
		counts = purge_conversations()
		click.echo(
			f"Deleted {counts['tickets']} tickets, {counts['communications']} messages and {counts['files']} files."
		)
	finally:
		frappe.destroy()


commands = [usedesk_email]
