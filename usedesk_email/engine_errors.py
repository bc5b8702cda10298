"""The mail engine's errors as the desk shows them.

The engine (`mail/`) never imports Frappe, so its errors are English: a host, a port, what
to change, often the server's own words. A reader of another language is told first, in
theirs, what kind of problem it is; the engine's detail follows unchanged.
"""

import frappe
from frappe import _

from usedesk_email.mail.errors import (
	AuthenticationError,
	ComposeError,
	ConfigError,
	MailConnectionError,
	MailTimeoutError,
	ProtocolError,
	TLSError,
)


def described(error: Exception) -> str:
	"""`error` for the current user (a job: the site's language)."""
	detail = str(error)
	if (frappe.local.lang or "en").split("-")[0] == "en":
		return detail
	return f"{kind(error)}: {detail}"


def kind(error: Exception) -> str:
	# Subclasses before their bases: a timeout and TLS are connection errors too.
	if isinstance(error, AuthenticationError):
		return _("The server refused the login")
	if isinstance(error, MailTimeoutError):
		return _("The server did not answer in time")
	if isinstance(error, TLSError):
		return _("The secure connection (TLS) could not be set up")
	if isinstance(error, MailConnectionError):
		return _("The connection to the server failed")
	if isinstance(error, ConfigError):
		return _("The settings cannot work")
	if isinstance(error, ProtocolError):
		return _("The server gave an unexpected answer")
	if isinstance(error, ComposeError):
		return _("The address or the letter is not valid")
	return _("Mail error")
