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
			checks.append(run_check(channel, _("Incoming (IMAP)"), lambda: describe_imap(channel, ca)))
		if channel.outgoing_type == "External":
			checks.append(run_check(channel, _("Outgoing (SMTP)"), lambda: describe_smtp(channel, ca)))
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
	try:
		return {"label": label, "ok": True, "message": check()}
	except MailError as error:
		secrets = [channel.get_password(f, raise_exception=False) for f in ("imap_password", "smtp_password")]
		return {"label": label, "ok": False, "message": redact(str(error), *secrets)}


def describe_imap(channel, ca: str | None) -> str:
	report = imap_session.check_connection(imap_settings(channel, ca))
	return _("Logged in; the Inbox has {0} messages, {1} unread (UIDVALIDITY {2}).").format(
		report.messages, report.unseen, report.uidvalidity
	)


def describe_smtp(channel, ca: str | None) -> str:
	return _("Logged in: {0}").format(smtp_sender.check_connection(smtp_settings(channel, ca)))
