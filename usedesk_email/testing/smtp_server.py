"""A real SMTP server on 127.0.0.1 for tests and demos (aiosmtpd), with TLS and AUTH.

The sender is only trustworthy if it is tested against a server that speaks the real
protocol, so this is aiosmtpd in a thread, not a mock: STARTTLS (required before AUTH and
mail), implicit TLS or plain, AUTH PLAIN/LOGIN against a user table and XOAUTH2 against a
token table (user -> token) or a callable(user, token), such as `OAuth2TestServer.accepts`. Per-recipient knobs reproduce what real servers do to a sender:

- `refuse[rcpt] = "550 5.1.1 no such user"` answers RCPT TO with that line (any code);
- `drop_after_data` closes the connection once the data of a letter to that recipient
  has arrived, without answering it;
- `hang_after_data` takes the data and never answers (the client times out);
- every accepted letter is kept in `deliveries` (envelope and de-dot-stuffed bytes) and
  handed to `on_deliver`, e.g. to put it into a Dovecot test mailbox; if the callback
  raises, the letter is answered with 451 and not recorded.

It binds port 0 and reads the port back, so parallel test runs never collide. The
certificates come from `usedesk_email.testing.certificates` (a throwaway CA).
"""

import asyncio
import base64
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from usedesk_email.testing.certificates import Certificates
from usedesk_email.testing.ports import HOST


@dataclass
class Delivery:
	mail_from: str
	rcpt_tos: list[str]
	data: bytes  # as the server stored it: CRLF line ends, dot-stuffing undone


class _Handler:
	def __init__(self, server: "SmtpTestServer"):
		self.owner = server

	async def handle_RCPT(
		self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
	) -> str:
		reply = self.owner.refuse.get(address.lower())
		if reply:
			return reply
		envelope.rcpt_tos.append(address)
		return "250 2.1.5 OK"

	async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
		rcpts = {r.lower() for r in envelope.rcpt_tos}
		if rcpts & self.owner.drop_after_data:
			server.transport.close()
			await asyncio.Event().wait()  # cancelled when the connection is gone
		if rcpts & self.owner.hang_after_data:
			await asyncio.Event().wait()  # cancelled when the server stops
		delivery = Delivery(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
		if self.owner.on_deliver is not None:
			try:
				await asyncio.get_running_loop().run_in_executor(None, self.owner.on_deliver, delivery)
			except Exception as error:
				return f"451 4.3.0 delivery failed: {type(error).__name__}"
		with self.owner.lock:
			self.owner.deliveries.append(delivery)
		return "250 2.0.0 OK: queued"

	async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
		"""RFC-less but universal: base64 of "user=U^Aauth=Bearer T^A^A"."""
		blob = args[1] if len(args) > 1 else ""
		try:
			fields = dict(
				part.split("=", 1) for part in base64.b64decode(blob).decode().split("\x01") if "=" in part
			)
		except ValueError:
			return AuthResult(success=False, handled=False)
		user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
		tokens = self.owner.tokens
		ok = bool(token) and (tokens(user, token) if callable(tokens) else tokens.get(user) == token)
		return AuthResult(success=ok, handled=False, auth_data=user if ok else None)


class _Controller(Controller):
	def _trigger_server(self):
		# Bound to port 0: learn the real port before the base class connects to it.
		self.port = self.server.sockets[0].getsockname()[1]
		super()._trigger_server()


class SmtpTestServer:
	"""Use as a context manager; `port` is known once started. Knob addresses in lower case."""

	def __init__(
		self,
		*,
		security: str = "starttls",
		certificates: Certificates | None = None,
		users: dict[str, str] | None = None,
		tokens: dict[str, str] | Callable[[str, str], bool] | None = None,
		on_deliver: Callable[[Delivery], None] | None = None,
		hostname: str = "smtp.test",
	):
		if security not in ("starttls", "ssl", "none"):
			raise ValueError(f"unknown security {security!r}")
		if security != "none" and certificates is None:
			raise ValueError(f"security {security!r} needs certificates")
		self.security = security
		self.users = dict(users or {})
		self.tokens = tokens if callable(tokens) else dict(tokens or {})
		self.on_deliver = on_deliver
		self.refuse: dict[str, str] = {}
		self.drop_after_data: set[str] = set()
		self.hang_after_data: set[str] = set()
		self.deliveries: list[Delivery] = []
		self.lock = threading.Lock()
		self.host = HOST
		context = None
		if certificates is not None:
			context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
			context.load_cert_chain(certificates.cert_file, certificates.key_file)
		self._controller = _Controller(
			_Handler(self),
			hostname=HOST,
			port=0,
			server_hostname=hostname,
			ssl_context=context if security == "ssl" else None,
			tls_context=context if security == "starttls" else None,
			require_starttls=security == "starttls",
			auth_require_tls=security == "starttls",
			auth_required=bool(self.users or self.tokens),
			authenticator=self._authenticate,
		)

	@property
	def port(self) -> int:
		return self._controller.port

	def _authenticate(
		self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
	) -> AuthResult:
		if isinstance(auth_data, LoginPassword):
			login, password = auth_data.login.decode(), auth_data.password.decode()
			return AuthResult(success=login in self.users and self.users[login] == password, handled=False)
		return AuthResult(success=False, handled=False)

	def start(self) -> "SmtpTestServer":
		self._controller.start()
		return self

	def stop(self) -> None:
		self._controller.stop()

	def __enter__(self) -> "SmtpTestServer":
		return self.start()

	def __exit__(self, *exc: object) -> None:
		self.stop()
