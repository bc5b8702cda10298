"""`bench --site S usedesk-email deliver`: the MTA pipe transport for Internal channels.

The exit status is what the MTA acts on (sysexits.h): 0 delivered, 65 refused (not mail or
too large; the MTA bounces it), 67 unknown recipient (bounced), 75 temporary failure (the
MTA keeps the message and retries). Anything unexpected is 75: a retry may lose time, never mail.
"""

import sys

import click
import frappe
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


def deliver_stdin(site: str, recipients: list[str]) -> int:
	try:
		frappe.init(site=site)
		frappe.connect()
	except Exception as exc:
		return fail(EX_TEMPFAIL, f"site {site} is not reachable now: {type(exc).__name__}: {exc}")
	try:
		return deliver_connected(recipients)
	finally:
		frappe.destroy()


def deliver_connected(recipients: list[str]) -> int:
	from usedesk_email.inbound import MessageTooLarge, NotMail, UnknownRecipient, accept, summary
	from usedesk_email.mail.routing import split_addresses
	from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import (
		max_message_bytes,
	)

	try:
		raw = sys.stdin.buffer.read(max_message_bytes() + 1)
		explicit = [a for value in recipients for a in split_addresses(value)]
		channel, result = accept(raw, explicit, source="bench deliver", check_auth=False)
	except (MessageTooLarge, NotMail) as exc:
		return fail(EX_DATAERR, str(exc))
	except UnknownRecipient as exc:
		return fail(EX_NOUSER, str(exc))
	except Exception as exc:
		return fail(EX_TEMPFAIL, f"temporary failure, try again later: {type(exc).__name__}: {exc}")
	outcome = summary(channel, result)
	if result.outcome == "failed":
		click.echo(f"kept for an admin to retry: Email Channel Failure {result.failure}", err=True)
	click.echo(" ".join(f"{k}={v}" for k, v in outcome.items() if v not in (None, False)))
	return EX_OK


def fail(code: int, message: str) -> int:
	click.echo(f"usedesk-email deliver: {message}", err=True)
	return code


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
