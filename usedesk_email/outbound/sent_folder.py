"""Saving the client's letter of a sent reply to the mailbox's Sent folder (IMAP APPEND).

A team that still opens the mailbox in Outlook or Thunderbird then sees the whole
conversation. It runs only after the letters were accepted by the SMTP server and never
touches their status or the ticket: a failure is shown on the channel's health. The
letter's ledger row is marked before the APPEND and committed, so a retried or repeated
job never saves it twice (a worker killed mid-APPEND leaves it at most once, not twice).
"""

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime

from usedesk_email.channel.config import ca_file, imap_settings
from usedesk_email.channel.kinds import OFFICE_365, OWN_SERVER
from usedesk_email.channel.oauth import with_fresh_token
from usedesk_email.engine_errors import described
from usedesk_email.mail import imap_session
from usedesk_email.mail.errors import MailConnectionError, MailError, MailTimeoutError, redact
from usedesk_email.mail.providers import saves_sent
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import CHANNEL_MESSAGE

RETRY_MINUTES = (1, 5, 30)  # a connection problem is tried again; then the failure stays shown
TEMPORARY = (MailConnectionError, MailTimeoutError)


def applies(channel) -> bool:
	"""A mailbox to append to (polled incoming) and letters the app sent itself (not Internal)."""
	return bool(
		channel.save_to_sent and channel.incoming_type in OWN_SERVER and channel.outgoing_type in OWN_SERVER
	)


def default_off(channel) -> bool:
	"""Where the option starts off: nothing to append to, or the provider saves sent mail itself."""
	if channel.incoming_type not in OWN_SERVER or channel.outgoing_type not in OWN_SERVER:
		return True
	return channel.outgoing_type == OFFICE_365 or bool(saves_sent(channel.smtp_host or ""))


def client_letter(communication: str):
	"""The reply's letter to the client (the first one, never the BCC copy), once it is sent."""
	rows = frappe.get_all(
		CHANNEL_MESSAGE,
		filters={"communication": communication, "direction": "Outgoing", "bcc": 0, "raw": ("is", "set")},
		fields=["name", "status", "appended_to_sent", "sent_attempts", "sent_retry_at", "raw"],
		order_by="creation asc",
		limit=1,
	)
	return rows[0] if rows and rows[0].status == "Sent" else None


def save_to_sent(channel, communication: str) -> None:
	"""Append the client's letter once; called after the SMTP send, under the reply's lock."""
	if not applies(channel):
		return
	row = client_letter(communication)
	if not row or row.appended_to_sent or (row.sent_retry_at and row.sent_retry_at > now_datetime()):
		return
	attempts = (row.sent_attempts or 0) + 1
	frappe.db.set_value(
		CHANNEL_MESSAGE, row.name, {"appended_to_sent": 1, "sent_attempts": attempts, "sent_retry_at": None}
	)
	frappe.db.commit()
	sent: list[str] = []
	try:
		with ca_file(channel) as ca:

			def append(refresh: bool) -> str:
				settings = imap_settings(channel, ca, refresh)
				sent.extend([settings.password, settings.oauth2_token or ""])
				return imap_session.append_to_sent(settings, row.raw.encode(), channel.sent_folder)

			with_fresh_token(channel.incoming_type, append)
	except Exception as exc:
		failed(channel, row.name, attempts, exc, sent)
		return
	frappe.db.set_value("Email Channel", channel.name, "sent_error", None, update_modified=False)
	frappe.db.commit()


def failed(channel, row: str, attempts: int, exc: Exception, secrets: list[str]) -> None:
	"""On the channel's health only; a connection problem is tried again later."""
	frappe.db.rollback()
	detail = redact(
		described(exc) if isinstance(exc, MailError) else frappe.utils.strip_html(str(exc)), *secrets
	)
	retry = isinstance(exc, TEMPORARY) and attempts <= len(RETRY_MINUTES)
	frappe.db.set_value(
		CHANNEL_MESSAGE,
		row,
		{
			"appended_to_sent": 0,
			"sent_retry_at": add_to_date(now_datetime(), minutes=RETRY_MINUTES[attempts - 1])
			if retry
			else None,
		},
	)
	message = _("A sent reply could not be saved to the Sent folder ({0}): {1}").format(
		_("will try again") if retry else _("not tried again"), detail
	)
	frappe.db.set_value("Email Channel", channel.name, "sent_error", message[:1000], update_modified=False)
	frappe.db.commit()


def due() -> list[str]:
	"""Replies whose client letter waits for another try at the Sent folder."""
	return frappe.get_all(
		CHANNEL_MESSAGE,
		filters=[
			["direction", "=", "Outgoing"],
			["appended_to_sent", "=", 0],
			["sent_retry_at", "is", "set"],  # Frappe compares an empty date as 0001-01-01
			["sent_retry_at", "<=", now_datetime()],
		],
		pluck="communication",
		distinct=True,
	)


def folder_names(channel) -> dict:
	"""The mailbox's folders for the form to pick from, and the one the server marks Sent."""
	with ca_file(channel) as ca:

		def listing(refresh: bool) -> dict:
			with imap_session.ImapSession(imap_settings(channel, ca, refresh)) as session:
				return {"folders": session.list_folder_names(), "sent": session.sent_folder()}

		return with_fresh_token(channel.incoming_type, listing)


def describe(channel, report) -> str:
	"""Test Connection's words on where sent replies will be saved."""
	if not applies(channel):
		return ""
	if report.sent_folder:
		return _("Sent replies will be saved to {0} (the server's Sent folder).").format(report.sent_folder)
	if channel.sent_folder:
		return _("The server marks no Sent folder; sent replies will be saved to {0}.").format(
			channel.sent_folder
		)
	return _("The server marks no Sent folder: choose one (Load Folders), or sent replies are not saved.")
