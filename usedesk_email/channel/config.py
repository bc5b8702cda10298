"""Turn an Email Channel document into the engine's connection settings.

The only place that reads the channel's passwords: they go straight into the engine's
settings objects and never into a log, an error or a response.

A stored secret is bound to where it was saved: it is sent only when the connection fields
it belongs to (host, port, encryption, username) equal the channel's saved row. Otherwise a
copy of the channel pointed at another host (Test Connection of an unsaved document) would
send it there; a password typed into the document is used as typed.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import frappe
from frappe import _
from frappe.utils import cint, cstr

from usedesk_email.channel.kinds import EXTERNAL, OFFICE_365, OWN_SERVER
from usedesk_email.channel.oauth import access_token
from usedesk_email.mail.imap_session import ImapSettings
from usedesk_email.mail.smtp_sender import SmtpSettings

SECURITY = {"SSL": "ssl", "STARTTLS": "starttls", "None": "none"}  # form value -> engine value
ENCRYPTION = {v: k for k, v in SECURITY.items()}
DOCTYPE = "Email Channel"

# which saved connection fields each stored secret is bound to
IMAP_BINDING = ("imap_host", "imap_port", "imap_encryption", "imap_username")
SMTP_BINDING = ("smtp_host", "smtp_port", "smtp_encryption", "smtp_username")
SMTP_WITH_IMAP_BINDING = (
	"smtp_host",
	"smtp_port",
	"smtp_encryption",
	"smtp_use_imap_credentials",
	"imap_username",
)
BINDINGS = {"imap_password": IMAP_BINDING, "smtp_password": SMTP_BINDING}
OAUTH_IMAP_BINDING = (
	"imap_host",
	"imap_port",
	"imap_encryption",
	"imap_email",
	"from_email",
	"connected_app",
	"connected_user",
)
OAUTH_SMTP_BINDING = (
	"smtp_host",
	"smtp_port",
	"smtp_encryption",
	"from_email",
	"connected_app",
	"connected_user",
)


def own_addresses(channel) -> set[str]:
	"""Addresses of the channel itself: they never become ticket participants or recipients."""
	addresses = {
		channel.main_email,
		channel.internal_address,
		channel.from_email,
		channel.imap_email,
		channel.bcc_email,
		*additional_emails(channel),
	}
	if channel.imap_username and "@" in channel.imap_username:
		addresses.add(channel.imap_username)
	return {a.strip().lower() for a in addresses if a and a.strip()}


def additional_emails(channel) -> list[str]:
	return [line.strip().lower() for line in (channel.additional_emails or "").splitlines() if line.strip()]


def secret(channel, fieldname: str, binding: tuple[str, ...] | None = None) -> str:
	"""A typed password as typed; a stored one only towards the saved connection fields."""
	typed = channel.get(fieldname)
	if typed and not channel.is_dummy_password(typed):
		return typed
	if not stored_secret(channel.name, fieldname):
		return ""
	refuse_if_changed(channel, binding or BINDINGS[fieldname], _(channel.meta.get_label(fieldname)))
	return stored_secret(channel.name, fieldname)


def stored_secret(name: str | None, fieldname: str) -> str:
	if not name:
		return ""
	from frappe.utils.password import get_decrypted_password

	return get_decrypted_password(DOCTYPE, name, fieldname, raise_exception=False) or ""


def saved_row(channel) -> dict | None:
	if not channel.name:
		return None
	return frappe.db.get_value(DOCTYPE, channel.name, "*", as_dict=True)


def changed_fields(channel, fields: tuple[str, ...], saved: dict | None = None) -> list[str]:
	"""Fields of `fields` whose value differs from the saved row (all of them without one)."""
	saved = saved if saved is not None else saved_row(channel)
	if not saved:
		return list(fields)
	return [
		f for f in fields if comparable(channel, f, channel.get(f)) != comparable(channel, f, saved.get(f))
	]


def comparable(channel, fieldname: str, value):
	if channel.meta.get_field(fieldname).fieldtype in ("Int", "Check"):
		return cint(value)
	return cstr(value).strip()


def refuse_if_changed(channel, fields: tuple[str, ...], what: str, saved: dict | None = None) -> None:
	changed = changed_fields(channel, fields, saved)
	if changed:
		frappe.throw(
			_(
				"The stored {0} is only sent to the server it was saved for, and {1} changed: type the password again."
			).format(what, ", ".join(_(channel.meta.get_label(f)) for f in changed)),
			title=_("Type the password again"),
		)


def bound_access_token(channel, binding: tuple[str, ...], force_refresh: bool) -> str:
	"""The Office 365 token only for the saved host, port, encryption, mailbox and authorisation."""
	changed = changed_fields(channel, binding)
	if changed:
		frappe.throw(
			_(
				"The Office 365 authorisation of channel {0} is only used for the saved connection, and {1} changed: save the channel and use Authorize again."
			).format(channel.name, ", ".join(_(channel.meta.get_label(f)) for f in changed)),
			title=_("Authorise again"),
		)
	return access_token(channel, force_refresh)


@contextmanager
def ca_file(channel) -> Iterator[str | None]:
	"""The channel's private CA as a file for the TLS context, removed afterwards."""
	pem = (channel.ca_certificate or "").strip()
	if not pem:
		yield None
		return
	fd, path = tempfile.mkstemp(suffix=".pem", prefix="usedesk-ca-")
	try:
		with os.fdopen(fd, "w") as f:
			f.write(pem + "\n")
		yield path
	finally:
		os.unlink(path)


def imap_settings(channel, ca_path: str | None, force_refresh: bool = False) -> ImapSettings:
	if channel.incoming_type not in OWN_SERVER:
		frappe.throw(
			_("Channel {0} does not poll a mailbox: its incoming connection is {1}.").format(
				channel.name, _(channel.incoming_type)
			)
		)
	office365 = channel.incoming_type == OFFICE_365
	return ImapSettings(
		host=(channel.imap_host or "").strip(),
		port=int(channel.imap_port or 0),
		security=SECURITY.get(channel.imap_encryption, ""),
		username=(
			channel.imap_email or channel.from_email if office365 else channel.imap_username or ""
		).strip(),
		password="" if office365 else secret(channel, "imap_password"),
		oauth2_token=bound_access_token(channel, OAUTH_IMAP_BINDING, force_refresh) if office365 else None,
		ca_file=ca_path,
	)


def smtp_settings(channel, ca_path: str | None, force_refresh: bool = False) -> SmtpSettings:
	"""External SMTP; without its own credentials it logs in with the IMAP ones, as the brief says."""
	if channel.outgoing_type == OFFICE_365:
		username, password = channel.from_email, ""
	elif channel.smtp_use_imap_credentials and channel.incoming_type == EXTERNAL:
		username, password = channel.imap_username, secret(channel, "imap_password", SMTP_WITH_IMAP_BINDING)
	else:
		username, password = channel.smtp_username, secret(channel, "smtp_password")
	return SmtpSettings(
		host=(channel.smtp_host or "").strip(),
		port=int(channel.smtp_port or 0),
		security=SECURITY.get(channel.smtp_encryption, ""),
		username=(username or "").strip(),
		password=password,
		oauth2_token=(
			bound_access_token(channel, OAUTH_SMTP_BINDING, force_refresh)
			if channel.outgoing_type == OFFICE_365
			else None
		),
		ca_file=ca_path,
	)
