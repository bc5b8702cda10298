"""Turn an Email Channel document into the engine's connection settings.

The only place that reads the channel's passwords: they go straight into the engine's
settings objects and never into a log, an error or a response.
"""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import frappe
from frappe import _

from usedesk_email.mail.imap_session import ImapSettings
from usedesk_email.mail.smtp_sender import SmtpSettings
from usedesk_email.oauth import OFFICE_365, access_token

SECURITY = {"SSL": "ssl", "STARTTLS": "starttls", "None": "none"}  # form value -> engine value
ENCRYPTION = {v: k for k, v in SECURITY.items()}


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


def secret(channel, fieldname: str) -> str:
	return channel.get_password(fieldname, raise_exception=False) or ""


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
	if channel.incoming_type not in ("External", OFFICE_365):
		frappe.throw(
			_("Channel {0} does not poll a mailbox: its incoming connection is {1}.").format(
				channel.name, channel.incoming_type
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
		oauth2_token=access_token(channel, force_refresh) if office365 else None,
		ca_file=ca_path,
	)


def smtp_settings(channel, ca_path: str | None, force_refresh: bool = False) -> SmtpSettings:
	"""External SMTP; without its own credentials it logs in with the IMAP ones, as the brief says."""
	if channel.outgoing_type == OFFICE_365:
		username, password = channel.from_email, ""
	elif channel.smtp_use_imap_credentials and channel.incoming_type == "External":
		username, password = channel.imap_username, secret(channel, "imap_password")
	else:
		username, password = channel.smtp_username, secret(channel, "smtp_password")
	return SmtpSettings(
		host=(channel.smtp_host or "").strip(),
		port=int(channel.smtp_port or 0),
		security=SECURITY.get(channel.smtp_encryption, ""),
		username=(username or "").strip(),
		password=password,
		oauth2_token=access_token(channel, force_refresh) if channel.outgoing_type == OFFICE_365 else None,
		ca_file=ca_path,
	)
