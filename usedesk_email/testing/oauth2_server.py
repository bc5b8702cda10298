"""A real OAuth2 provider on 127.0.0.1 for tests: token endpoint and token introspection.

OAuth2 logins (Office 365, Gmail) must be tested end to end: the engine refreshes its
access token at a token endpoint and the mail server checks the token at the provider.
This is a small stdlib HTTP server in a thread that plays the provider for both sides:

- ``POST /token`` (RFC 6749, form-encoded): ``grant_type=refresh_token`` and
  ``grant_type=authorization_code`` (a code registered with ``register_code``). The client
  authenticates with ``client_id``/``client_secret`` in the form or with HTTP Basic. It
  answers ``{"access_token", "token_type": "Bearer", "expires_in", "refresh_token",
  "scope"}``; an unknown, revoked or already rotated refresh token or code gets 400
  ``invalid_grant``, a wrong client 401 ``invalid_client``.
- ``POST /introspect`` (RFC 7662, ``token=...`` as Dovecot's ``introspection_mode = post``
  sends it): ``{"active": true, "username", "exp", ...}`` for a live access token,
  ``{"active": false}`` otherwise. It asks for no client credentials: it only listens on
  127.0.0.1 for a test run.

Usage::

        with OAuth2TestServer() as provider:
            access, refresh = provider.issue("alice")
            # Dovecot: DovecotServer(oauth2_introspection_url=provider.introspection_url)
            provider.expire(access)  # introspection now says inactive
            provider.revoke(refresh)  # the grant's access tokens die with it

Every access token belongs to a grant (user, scope, current refresh token). With
``rotate_refresh_tokens`` (the default, as Microsoft does) each refresh answers a new
refresh token and retires the old one, so a client that keeps the old one fails;
``revoke`` of any of a grant's refresh tokens, current or retired, ends the whole grant.
``token_requests`` and ``introspections`` count the requests to each endpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

from usedesk_email.testing.ports import HOST

DEFAULT_SCOPE = (
	"https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access"
)
# A request body bigger than this is refused: the endpoints take a few short fields.
MAX_BODY = 64 * 1024


class OAuth2Error(Exception):
	"""An OAuth2 error answer: HTTP status, ``error`` code and a description."""

	def __init__(self, status: int, error: str, description: str) -> None:
		super().__init__(f"{error}: {description}")
		self.status = status
		self.error = error
		self.description = description


@dataclass
class _Grant:
	"""What the user consented to once; access and refresh tokens are issued under it."""

	user: str
	scope: str
	refresh_token: str  # the current one; replaced ones still map to the grant
	revoked: bool = False


@dataclass
class _AccessToken:
	grant: _Grant
	issued_at: float
	expires_at: float


@dataclass
class _Code:
	user: str
	scope: str
	redirect_uri: str | None
	code_challenge: str | None  # PKCE S256 challenge, when the authorize step sent one


class OAuth2TestServer:
	"""Use as a context manager; the URLs are known once started (port picked by the OS).

	``client_id``/``client_secret``: the one client the token endpoint accepts (random
	when omitted). ``access_token_lifetime``: ``expires_in`` of tokens from ``/token``.
	"""

	host = HOST

	def __init__(
		self,
		*,
		client_id: str | None = None,
		client_secret: str | None = None,
		access_token_lifetime: int = 3600,
		rotate_refresh_tokens: bool = True,
	) -> None:
		self.client_id = client_id or f"client-{secrets.token_hex(8)}"
		self.client_secret = client_secret or secrets.token_urlsafe(24)
		self.access_token_lifetime = access_token_lifetime
		self.rotate_refresh_tokens = rotate_refresh_tokens
		self.token_requests = 0
		self.introspections = 0
		self.port = 0
		self._lock = threading.Lock()
		self._grants: dict[str, _Grant] = {}  # by every refresh token it ever had
		self._access: dict[str, _AccessToken] = {}
		self._codes: dict[str, _Code] = {}
		self._httpd: ThreadingHTTPServer | None = None
		self._thread: threading.Thread | None = None

	def __enter__(self) -> OAuth2TestServer:
		return self.start()

	def __exit__(self, *exc_info: object) -> None:
		self.stop()

	@property
	def base_url(self) -> str:
		if not self.port:
			raise RuntimeError("the OAuth2 test server is not started")
		return f"http://{self.host}:{self.port}"

	@property
	def token_url(self) -> str:
		return f"{self.base_url}/token"

	@property
	def introspection_url(self) -> str:
		return f"{self.base_url}/introspect"

	def start(self) -> OAuth2TestServer:
		"""Bind a port chosen by the OS (no race with other runs) and serve in a thread."""
		if self._httpd is not None:
			raise RuntimeError("the OAuth2 test server is already started")
		httpd = ThreadingHTTPServer((self.host, 0), _Handler)
		httpd.daemon_threads = True
		httpd.provider = self
		self._httpd = httpd
		self.port = httpd.server_address[1]
		self._thread = threading.Thread(
			target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
		)
		self._thread.start()
		return self

	def stop(self) -> None:
		httpd, self._httpd = self._httpd, None
		if httpd is None:
			return
		httpd.shutdown()
		httpd.server_close()
		if self._thread is not None:
			self._thread.join(5)
			self._thread = None
		self.port = 0

	# -- API for tests ------------------------------------------------------------

	def issue(self, user: str, lifetime: int = 3600, *, scope: str = DEFAULT_SCOPE) -> tuple[str, str]:
		"""A new grant for ``user``, as after a consent: (access_token, refresh_token)."""
		with self._lock:
			grant = _Grant(user=user, scope=scope, refresh_token=_token("rt"))
			self._grants[grant.refresh_token] = grant
			return self._new_access_token(grant, lifetime), grant.refresh_token

	def expire(self, access_token: str) -> None:
		"""Make an access token expire now (its grant and refresh token stay valid)."""
		with self._lock:
			self._access[access_token].expires_at = time.time()

	def revoke(self, refresh_token: str) -> None:
		"""End the grant of a refresh token: it and every access token issued under it die."""
		with self._lock:
			self._grants[refresh_token].revoked = True

	def register_code(
		self,
		user: str,
		*,
		scope: str = DEFAULT_SCOPE,
		redirect_uri: str | None = None,
		code_challenge: str | None = None,
	) -> str:
		"""An authorization code as the authorize step would hand it out (single use).

		``redirect_uri`` and the PKCE ``code_challenge`` (S256), when given, must be matched
		by the token request, as a real provider insists.
		"""
		code = _token("code")
		with self._lock:
			self._codes[code] = _Code(user, scope, redirect_uri, code_challenge)
		return code

	def is_active(self, access_token: str) -> bool:
		with self._lock:
			return self._introspect(access_token).get("active", False)

	def accepts(self, user: str, access_token: str) -> bool:
		"""What a mail server asks: is this a live token of this user? (``SmtpTestServer(tokens=...)``)"""
		with self._lock:
			answer = self._introspect(access_token)
		return bool(answer.get("active")) and answer.get("username") == user

	# -- endpoints (called from the handler threads) ---------------------------

	def token_endpoint(self, form: dict[str, str], authorization: str | None) -> dict:
		with self._lock:
			self.token_requests += 1
			self._check_client(form, authorization)
			grant_type = form.get("grant_type")
			if grant_type == "refresh_token":
				grant = self._refresh(form)
			elif grant_type == "authorization_code":
				grant = self._redeem_code(form)
			elif not grant_type:
				raise OAuth2Error(400, "invalid_request", "grant_type is missing")
			else:
				raise OAuth2Error(
					400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported"
				)
			return {
				"access_token": self._new_access_token(grant, self.access_token_lifetime),
				"token_type": "Bearer",
				"expires_in": self.access_token_lifetime,
				"refresh_token": grant.refresh_token,
				"scope": grant.scope,
			}

	def introspection_endpoint(self, form: dict[str, str]) -> dict:
		with self._lock:
			self.introspections += 1
			return self._introspect(form.get("token", ""))

	# -- internals (under the lock) --------------------------------------------

	def _check_client(self, form: dict[str, str], authorization: str | None) -> None:
		client_id, client_secret = form.get("client_id"), form.get("client_secret")
		if authorization and authorization.lower().startswith("basic "):
			try:
				decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
			except (binascii.Error, UnicodeDecodeError):
				raise OAuth2Error(401, "invalid_client", "malformed Basic credentials") from None
			basic_id, _, basic_secret = decoded.partition(":")
			client_id, client_secret = unquote(basic_id), unquote(basic_secret)
		if client_id != self.client_id or not secrets.compare_digest(
			(client_secret or "").encode(), self.client_secret.encode()
		):
			raise OAuth2Error(401, "invalid_client", "client authentication failed")

	def _refresh(self, form: dict[str, str]) -> _Grant:
		refresh_token = _required(form, "refresh_token")
		grant = self._grants.get(refresh_token)
		if grant is None or grant.revoked:
			raise OAuth2Error(400, "invalid_grant", "the refresh token is unknown, expired or revoked")
		if refresh_token != grant.refresh_token:
			raise OAuth2Error(400, "invalid_grant", "the refresh token was already used and replaced")
		requested = form.get("scope")
		if requested and not set(requested.split()) <= set(grant.scope.split()):
			raise OAuth2Error(400, "invalid_scope", "the scope asked for exceeds the granted scope")
		if self.rotate_refresh_tokens:
			grant.refresh_token = _token("rt")
			self._grants[grant.refresh_token] = grant
		return grant

	def _redeem_code(self, form: dict[str, str]) -> _Grant:
		code = self._codes.pop(_required(form, "code"), None)
		if code is None:
			raise OAuth2Error(400, "invalid_grant", "the authorization code is unknown or already used")
		if code.redirect_uri is not None and form.get("redirect_uri") != code.redirect_uri:
			raise OAuth2Error(400, "invalid_grant", "redirect_uri does not match the authorize request")
		if code.code_challenge is not None:
			verifier = form.get("code_verifier", "")
			digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
			if not verifier or digest.decode() != code.code_challenge:
				raise OAuth2Error(400, "invalid_grant", "the PKCE code_verifier does not match")
		grant = _Grant(user=code.user, scope=code.scope, refresh_token=_token("rt"))
		self._grants[grant.refresh_token] = grant
		return grant

	def _new_access_token(self, grant: _Grant, lifetime: int) -> str:
		token = _token("at")
		now = time.time()
		self._access[token] = _AccessToken(grant, now, now + lifetime)
		return token

	def _introspect(self, token: str) -> dict:
		access = self._access.get(token)
		if access is None or access.grant.revoked or time.time() >= access.expires_at:
			return {"active": False}
		return {
			"active": True,
			"username": access.grant.user,
			"sub": access.grant.user,
			"scope": access.grant.scope,
			"client_id": self.client_id,
			"token_type": "Bearer",
			"iat": int(access.issued_at),
			"exp": int(access.expires_at),
		}


class _Handler(BaseHTTPRequestHandler):
	"""Form posts in, JSON out; HTTP/1.0 so every connection ends after its answer."""

	server_version = "usedesk-oauth2-test/1"

	def do_POST(self) -> None:
		provider: OAuth2TestServer = self.server.provider
		path = self.path.split("?", 1)[0]
		try:
			form = self._form()
			if path == "/token":
				self._answer(200, provider.token_endpoint(form, self.headers.get("Authorization")))
			elif path == "/introspect":
				self._answer(200, provider.introspection_endpoint(form))
			else:
				self._answer(404, {"error": "not_found"})
		except OAuth2Error as error:
			self._answer(error.status, {"error": error.error, "error_description": error.description})

	def do_GET(self) -> None:
		self._answer(405, {"error": "invalid_request", "error_description": "use POST"})

	def _form(self) -> dict[str, str]:
		content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
		if content_type != "application/x-www-form-urlencoded":
			raise OAuth2Error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
		try:
			length = int(self.headers.get("Content-Length", "0"))
		except ValueError:
			length = -1
		if not 0 <= length <= MAX_BODY:
			raise OAuth2Error(400, "invalid_request", "missing or too large Content-Length")
		body = self.rfile.read(length).decode("utf-8", errors="replace")
		form = {}
		for name, values in parse_qs(body, keep_blank_values=True).items():
			if len(values) > 1:
				raise OAuth2Error(400, "invalid_request", f"parameter {name!r} is repeated")
			form[name] = values[0]
		return form

	def _answer(self, status: int, payload: dict) -> None:
		body = json.dumps(payload).encode()
		self.send_response(status, HTTPStatus(status).phrase)
		self.send_header("Content-Type", "application/json")
		self.send_header("Content-Length", str(len(body)))
		self.send_header("Cache-Control", "no-store")
		self.send_header("Pragma", "no-cache")
		if status == 401:
			self.send_header("WWW-Authenticate", 'Basic realm="usedesk-oauth2-test"')
		self.end_headers()
		self.wfile.write(body)

	def log_message(self, format: str, *args: object) -> None:
		"""Quiet: the counters and answers are what tests look at, not stderr lines."""


def _required(form: dict[str, str], name: str) -> str:
	value = form.get(name)
	if not value:
		raise OAuth2Error(400, "invalid_request", f"{name} is missing")
	return value


def _token(prefix: str) -> str:
	return f"{prefix}.{secrets.token_urlsafe(24)}"
