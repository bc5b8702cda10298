"""OAuth2 logins of the IMAP session against a real Dovecot that asks a real provider.

Dovecot checks each bearer token at the test provider's introspection endpoint
(``DovecotServer(oauth2_introspection_url=...)``), so a token is accepted or refused by
the same round trip as with Office 365: nothing here is mocked. The refresh goes through
the provider's token endpoint with a plain HTTP POST, as the engine's refresh will.
"""

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient

from usedesk_email.mail.drain import drain
from usedesk_email.mail.errors import AuthenticationError
from usedesk_email.mail.imap_session import FetchedMessage, ImapSettings, check_connection
from usedesk_email.testing.dovecot import DovecotServer, Mailbox
from usedesk_email.testing.oauth2_server import OAuth2TestServer


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuth2TestServer]:
	with OAuth2TestServer() as server:
		yield server


@pytest.fixture(scope="module")
def oauth_dovecot(provider: OAuth2TestServer) -> Iterator[DovecotServer]:
	"""A Dovecot of its own: the session one keeps the default (password-only) config."""
	with DovecotServer(oauth2_introspection_url=provider.introspection_url) as server:
		yield server


@pytest.fixture
def account(oauth_dovecot: DovecotServer) -> Mailbox:
	return oauth_dovecot.new_mailbox("oauth")


def settings_for(account: Mailbox, token: str, security: str = "ssl", **overrides) -> ImapSettings:
	server = account.server
	ports = {"ssl": server.ssl_port, "starttls": server.plain_port, "none": server.no_tls_port}
	values = {
		"host": server.host,
		"port": ports[security],
		"security": security,
		"username": account.user,
		"password": "",
		"oauth2_token": token,
		"ca_file": str(server.ca_file),
		"connect_timeout": 5.0,
		"read_timeout": 5.0,
	}
	values.update(overrides)
	return ImapSettings(**values)


def message(n: int) -> bytes:
	return (
		f"From: Client <client@example.com>\r\n"
		f"To: support@example.com\r\n"
		f"Subject: OAuth2 question {n}\r\n"
		f"Message-ID: <{n}.oauth2@usedesk.invalid>\r\n"
		f"\r\n"
		f"Hello {n}.\r\n"
	).encode()


def post_token(provider: OAuth2TestServer, **form: str) -> tuple[int, dict]:
	"""POST the form to the token endpoint as a client would: (HTTP status, JSON answer)."""
	request = urllib.request.Request(
		provider.token_url,
		data=urllib.parse.urlencode(form).encode(),
		headers={"Content-Type": "application/x-www-form-urlencoded"},
		method="POST",
	)
	try:
		with urllib.request.urlopen(request, timeout=5) as response:
			return response.status, json.loads(response.read())
	except urllib.error.HTTPError as error:
		with error:
			return error.code, json.loads(error.read())


def refresh(provider: OAuth2TestServer, refresh_token: str, **overrides: str) -> tuple[int, dict]:
	form = {
		"grant_type": "refresh_token",
		"refresh_token": refresh_token,
		"client_id": provider.client_id,
		"client_secret": provider.client_secret,
	}
	form.update(overrides)
	return post_token(provider, **form)


def assert_refused_without_token(settings: ImapSettings, token: str) -> None:
	with pytest.raises(AuthenticationError) as caught:
		check_connection(settings)
	assert token not in str(caught.value) and token not in repr(caught.value)
	assert settings.username in str(caught.value)


# -- the brief's cases -----------------------------------------------------------------


def test_xoauth2_login_with_a_live_token_drains_a_delivered_message(provider, account):
	access, _refresh = provider.issue(account.user)
	account.server.deliver(account.user, message(1))
	handled: list[FetchedMessage] = []

	result = drain(settings_for(account, access, "ssl"), lambda m: handled.append(m) or True)

	assert [m.uid for m in handled] == [1] and b"<1.oauth2@usedesk.invalid>" in handled[0].raw
	assert (result.fetched, result.acknowledged, result.marked_seen) == (1, 1, 1)
	assert account.server.flags(account.user) == {1: {"\\Seen"}}


def test_expired_token_is_refused_without_the_token_in_the_error(provider, account):
	access, _refresh = provider.issue(account.user)
	check_connection(settings_for(account, access))

	provider.expire(access)

	assert_refused_without_token(settings_for(account, access), access)


def test_token_issued_already_expired_is_refused(provider, account):
	access, _refresh = provider.issue(account.user, lifetime=0)

	assert_refused_without_token(settings_for(account, access), access)


def test_revoked_grant_refuses_its_access_token_and_its_refresh_token(provider, account):
	access, refresh_token = provider.issue(account.user)
	check_connection(settings_for(account, access))

	provider.revoke(refresh_token)

	assert_refused_without_token(settings_for(account, access), access)
	status, answer = refresh(provider, refresh_token)
	assert (status, answer["error"]) == (400, "invalid_grant")


def test_refreshed_access_token_logs_in_and_the_old_refresh_token_is_spent(provider, account):
	access, refresh_token = provider.issue(account.user)
	provider.expire(access)
	assert_refused_without_token(settings_for(account, access), access)

	status, answer = refresh(provider, refresh_token)

	assert status == 200
	assert answer["token_type"] == "Bearer" and answer["expires_in"] == provider.access_token_lifetime
	assert answer["access_token"] != access and answer["refresh_token"] != refresh_token
	assert set(answer) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
	account.server.deliver(account.user, message(1))
	result = drain(settings_for(account, answer["access_token"]), lambda m: True)
	assert result.acknowledged == 1
	# Rotation: the client must keep the new refresh token; the old one is refused.
	assert refresh(provider, refresh_token)[1]["error"] == "invalid_grant"
	status, again = refresh(provider, answer["refresh_token"])
	assert status == 200
	check_connection(settings_for(account, again["access_token"]))


def test_dovecot_asks_the_introspection_endpoint_once_per_login(provider, account):
	access, _refresh = provider.issue(account.user)
	before = provider.introspections

	check_connection(settings_for(account, access))
	assert provider.introspections == before + 1

	provider.expire(access)
	with pytest.raises(AuthenticationError):
		check_connection(settings_for(account, access))
	assert provider.introspections == before + 2


# -- what else the OAuth2 Dovecot and the provider must get right ------------------


@pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
def test_every_listener_takes_xoauth2(provider, account, security):
	"""The no-STARTTLS listener is the second Dovecot instance: it has the passdb too."""
	access, _refresh = provider.issue(account.user)

	report = check_connection(settings_for(account, access, security))

	assert report.messages == 0


def test_oauthbearer_is_offered_and_checked_too(provider, account):
	access, _refresh = provider.issue(account.user)
	context = ssl.create_default_context(cafile=str(account.server.ca_file))

	with IMAPClient(account.server.host, account.server.ssl_port, ssl_context=context, timeout=5) as client:
		assert b"AUTH=OAUTHBEARER" in client.capabilities()
		client.oauthbearer_login(account.user, access)
		assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_a_token_of_another_user_is_refused(provider, account):
	other = account.server.new_mailbox("oauth")
	access, _refresh = provider.issue(other.user)

	assert_refused_without_token(settings_for(account, access), access)


def test_password_logins_still_work_and_a_password_is_no_token(account):
	report = check_connection(settings_for(account, "", password=account.password))
	assert report.messages == 0

	with pytest.raises(AuthenticationError):
		check_connection(settings_for(account, account.password))


def test_token_endpoint_refuses_a_wrong_client_and_unknown_grants(provider, account):
	_access, refresh_token = provider.issue(account.user)
	before = provider.token_requests

	status, answer = refresh(provider, refresh_token, client_secret="not-the-secret")
	assert (status, answer["error"]) == (401, "invalid_client")
	status, answer = refresh(provider, "rt.unknown")
	assert (status, answer["error"]) == (400, "invalid_grant") and answer["error_description"]
	status, answer = refresh(provider, refresh_token, grant_type="password")
	assert (status, answer["error"]) == (400, "unsupported_grant_type")
	assert provider.token_requests == before + 3
	assert refresh(provider, refresh_token)[0] == 200, "failed requests spend nothing"


def test_authorization_code_is_redeemed_once_for_working_tokens(provider, account):
	code = provider.register_code(account.user, redirect_uri="http://127.0.0.1/callback")
	form = {
		"grant_type": "authorization_code",
		"code": code,
		"redirect_uri": "http://127.0.0.1/callback",
		"client_id": provider.client_id,
		"client_secret": provider.client_secret,
	}

	status, answer = post_token(provider, **form)

	assert status == 200 and answer["token_type"] == "Bearer"
	check_connection(settings_for(account, answer["access_token"]))
	assert refresh(provider, answer["refresh_token"])[0] == 200
	status, again = post_token(provider, **form)
	assert (status, again["error"]) == (400, "invalid_grant")
