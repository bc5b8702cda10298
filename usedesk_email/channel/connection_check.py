"""The channel form's Test Connection: log in to each configured server, change nothing."""

import frappe
from frappe import _
from frappe.email.doctype.email_account.email_account import EmailAccount

from usedesk_email.channel.config import ca_file, imap_settings, smtp_settings
from usedesk_email.channel.kinds import EXTERNAL, INTERNAL
from usedesk_email.engine_errors import described
from usedesk_email.mail import imap_session, smtp_sender
from usedesk_email.mail.errors import MailError, redact
from usedesk_email.outbound import sent_folder
from usedesk_email.outbound.replies import outgoing_problem


def check_channel(channel) -> dict:
	"""One row per server: whether it worked, and the server's or the engine's clear message."""
	checks = []
	with ca_file(channel) as ca:
		if channel.incoming_type == EXTERNAL:
			checks.append(
				run_check(channel, _("Incoming (IMAP)"), lambda sent: describe_imap(channel, ca, sent))
			)
		if channel.outgoing_type == EXTERNAL:
			checks.append(
				run_check(channel, _("Outgoing (SMTP)"), lambda sent: describe_smtp(channel, ca, sent))
			)
	if channel.outgoing_type == INTERNAL:
		checks.append(check_site_outgoing(channel))
	if not checks:
		checks.append(
			{
				"label": _("Mail connections"),
				"ok": True,
				"message": _("Internal connections use the site's own mail; nothing to log in to."),
			}
		)
	return {"ok": all(c["ok"] for c in checks), "checks": checks}


def check_site_outgoing(channel) -> dict:
	"""Internal outgoing sends through the site's Email Account: the one a reply would use
	(`replies.outgoing_problem`) must exist and log in to its SMTP server, or no reply goes out."""
	label = _("Outgoing (the site's Email Account)")
	problem = outgoing_problem(channel)
	if problem:
		return {"label": label, "ok": False, "message": problem}
	account = EmailAccount.find_outgoing(match_by_email=channel.from_email, match_by_doctype="Ticket")
	server = account.get_smtp_server()
	shown = len(frappe.local.message_log)
	try:
		server.session  # connects, secures and logs in as Frappe does when it sends
	except Exception as error:  # Frappe throws ValidationError or OutgoingEmailError, smtplib its own
		del frappe.local.message_log[shown:]  # reported in the row, not in a second dialog
		return {
			"label": label,
			"ok": False,
			"message": _("Email Account {0} could not connect to {1}:{2}: {3}").format(
				account.name,
				server.server,
				server.port,
				frappe.utils.strip_html(str(error)) or type(error).__name__,
			),
		}
	finally:
		server.quit()
	return {
		"label": label,
		"ok": True,
		"message": _("Email Account {0} connected to {1}:{2}.").format(
			account.name, server.server, server.port
		),
	}


def run_check(channel, label: str, check) -> dict:
	"""Errors are redacted with the secrets this check sent, and only those.

	Redacting with other stored secrets would let a server's error message test guesses of them.
	A stored secret the check may not send (see `channel_config.secret`) stops it with a clear
	message before anything is sent.
	"""
	sent: list[str] = []
	try:
		return {"label": label, "ok": True, "message": check(sent)}
	except MailError as error:
		return {"label": label, "ok": False, "message": redact(described(error), *sent)}


def describe_imap(channel, ca: str | None, sent: list[str]) -> str:
	settings = imap_settings(channel, ca)
	sent += [settings.password, settings.oauth2_token or ""]
	report = imap_session.check_connection(settings)
	message = _("Logged in; the Inbox has {0} messages, {1} unread (UIDVALIDITY {2}).").format(
		report.messages, report.unseen, report.uidvalidity
	)
	return " ".join(filter(None, [message, sent_folder.describe(channel, report)]))


def describe_smtp(channel, ca: str | None, sent: list[str]) -> str:
	settings = smtp_settings(channel, ca)
	sent += [settings.password, settings.oauth2_token or ""]
	return _("Logged in: {0}").format(smtp_sender.check_connection(settings))
