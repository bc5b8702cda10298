"""`bench --site S usedesk-email ...`: deliver (the MTA pipe, `inbound/mta.py`),
listen (real time over IMAP IDLE, `inbound/listen.py`), postfix-config and purge. Bench imports this module for every command it runs, so what the
commands need is imported when they run."""

import sys

import click
import frappe
from frappe import _
from frappe.commands import get_site, pass_context


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
	from usedesk_email.inbound.mta import deliver_stdin

	sys.exit(deliver_stdin(get_site(context), list(recipients)))


@usedesk_email.command("listen")
@pass_context
def listen(context):
	"""Poll each External and Office 365 channel the moment mail arrives (IMAP IDLE).

	Runs until stopped (SIGTERM); run it under supervisor or in the Procfile. Several, on
	one machine or many, share the channels.
	"""
	from usedesk_email.inbound.listen import run

	run(get_site(context))


@usedesk_email.command("postfix-config")
@pass_context
def postfix_config(context):
	"""Print the Postfix set-up for this bench and site, and write its recipient table."""
	from usedesk_email.inbound.postfix import refresh_recipient_table, setup_warnings, site_setup
	from usedesk_email.inbound.postfix_config import config_block

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
		question = _(
			"Delete all tickets with {0} messages and {1} files on {2}? This cannot be undone"
		).format(counts["communications"], counts["files"], frappe.local.site)
		if not yes and not click.confirm(question):
			click.echo(_("Nothing deleted."))
			sys.exit(1)
		counts = purge_conversations()
		click.echo(
			_("Deleted {0} tickets, {1} messages and {2} files.").format(
				counts["tickets"], counts["communications"], counts["files"]
			)
		)
	finally:
		frappe.destroy()


commands = [usedesk_email]
