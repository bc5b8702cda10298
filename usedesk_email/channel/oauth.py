"""Office 365 access tokens for a channel, kept by Frappe's Connected App and Token Cache.

Microsoft no longer accepts passwords over IMAP and SMTP: the channel logs in with XOAUTH2
and a short-lived access token, refreshed with the refresh token the admin's one-time
authorisation left in the Token Cache. A token is refreshed a few minutes before it
expires, and once more when the server refuses it anyway (revoked sessions, clock skew).
A refresh the provider answers with `invalid_grant` (consent revoked or expired) is an
authentication failure: the channel shows it and backs off until someone authorises again.
"""

from collections.abc import Callable
from typing import TypeVar

import frappe
from frappe import _
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError, OAuth2Error

from usedesk_email.channel.kinds import OFFICE_365
from usedesk_email.mail.errors import AuthenticationError, MailConnectionError

REFRESH_MARGIN = 300  # seconds before expiry
T = TypeVar("T")


def access_token(channel, force_refresh: bool = False) -> str:
	app = frappe.get_doc("Connected App", channel.connected_app)
	cache = app.get_token_cache(channel.connected_user) if channel.connected_user else None
	if not cache or not cache.get_password("refresh_token", raise_exception=False):
		raise AuthenticationError(
			_("Office 365 is not authorised for channel {0} yet: use Authorize on the channel.").format(
				channel.name
			)
		)
	if force_refresh or cache.get_expires_in() < REFRESH_MARGIN:
		refresh(app, cache, channel)
	return cache.get_password("access_token")


def token_expires_in(channel) -> float:
	"""Seconds the channel's current access token stays valid (a long-lived IMAP connection
	logs in again with a new one before then)."""
	cache = frappe.get_doc("Connected App", channel.connected_app).get_token_cache(channel.connected_user)
	return cache.get_expires_in() if cache else 0.0


def refresh(app, cache, channel) -> None:
	session = app.get_oauth2_session(channel.connected_user)
	try:
		token = session.refresh_token(
			app.token_uri,
			refresh_token=cache.get_password("refresh_token"),
			client_id=app.client_id,
			client_secret=app.get_password("client_secret", raise_exception=False),
		)
	except InvalidGrantError:
		raise AuthenticationError(
			_(
				"The Office 365 authorisation of channel {0} was revoked or has expired (invalid_grant): use Authorize again."
			).format(channel.name)
		) from None
	except OAuth2Error as exc:
		raise AuthenticationError(
			_("Microsoft refused to refresh the token of channel {0}: {1}").format(channel.name, exc.error)
		) from None
	except Exception as exc:  # the token endpoint is unreachable or answers garbage: try later
		raise MailConnectionError(
			_("The token endpoint of channel {0} could not be reached: {1}").format(
				channel.name, type(exc).__name__
			)
		) from None
	cache.update_data(token)


def with_fresh_token(connection_type: str, run: Callable[[bool], T]) -> T:
	"""`run(force_refresh)`; an Office 365 login refused once is retried with a new token.

	Only for operations that fail at login, before anything was handed over.
	"""
	try:
		return run(False)
	except AuthenticationError:
		if connection_type != OFFICE_365:
			raise
		return run(True)
