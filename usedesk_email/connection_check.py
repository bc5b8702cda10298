"""The channel form's Test Connection: log in to each configured server, change nothing."""

import frappe
from frappe import _

from usedesk_email.channel_config import ca_file, imap_settings, smtp_settings
from usedesk_email.mail import imap_session, smtp_sender
from usedesk_email.mail.errors import MailError, redact


def check_channel(channel) -> dict:
	"""One row per server: whether it worked, and the server's or the engine's clear message."""
	checks = []
	with ca_file(channel) as ca:
		if channel.incoming_type == "External":
			checks.append(
				run_check(channel, _("Incoming (IMAP)"), lambda sent: describe_imap(channel, ca, sent))
			)
		if channel.outgoing_type == "External":
			checks.append(
				run_check(channel, _("Outgoing (SMTP)"), lambda sent: describe_smtp(channel, ca, sent))
			)
	if not checks:
		checks.append(
			{
				"label": _("Connections"),
				"ok": True,
				"message": _("Internal connections use the site's own mail; nothing to log in to."),
			}
		)
	return {"ok": all(c["ok"] for c in checks), "checks": checks}


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
		return {"label": label, "ok": False, "message": redact(str(error), *sent)}


def describe_imap(channel, ca: str | None, sent: list[str]) -> str:
	settings = imap_settings(channel, ca)
	sent += [settings.password, settings.oauth2_token or ""]
	report = imap_session.check_connection(settings)
	return _("Logged in; the Inbox has {0} messages, {1} unread (UIDVALIDITY {2}).").format(
		report.messages, report.unseen, report.uidvalidity
	)


def describe_smtp(channel, ca: str | None, sent: list[str]) -> str:
	settings = smtp_settings(channel, ca)
	sent += [settings.password, settings.oauth2_token or ""]
	return _("Logged in: {0}").format(smtp_sender.check_connection(settings))
