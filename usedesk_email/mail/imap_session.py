"""The IMAP half of the inbound engine: take unread mail without losing or doubling any.

Rules this module keeps (SPEC §3, §6):

- only UNSEEN messages of the folder are taken, fetched with ``BODY.PEEK[]`` so fetching
  never marks anything read;
- ``\\Seen`` is set only on messages the caller acknowledged, i.e. after its own commit;
  a crash, a killed process or a dropped connection before that leaves them unread, and
  the caller dedupes a message that was committed but not yet marked (by Message-ID);
- bodies come in batches bounded by a message count and a byte total (sizes are asked
  first with ``RFC822.SIZE``), so memory stays bounded whatever the backlog;
- a session has a time budget and reports what it left for the next run;
- certificates are always verified (a CA bundle can be given instead), STARTTLS is never
  silently skipped, and every failure is a typed error naming host:port whose text
  never contains the password or token.
"""

from __future__ import annotations

import imaplib
import os
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from imapclient import IMAPClient, SocketTimeout
from imapclient import exceptions as imap_errors
from imapclient import tls as imap_tls

from usedesk_email.mail.errors import (
	AuthenticationError,
	ConfigError,
	MailConnectionError,
	MailError,
	MailTimeoutError,
	ProtocolError,
	TLSError,
	redact,
	ssl_port_hint,
	tls_problem,
)

SECURITIES = ("ssl", "starttls", "none")
SEEN = b"\\Seen"
SENT = b"\\Sent"  # RFC 6154 SPECIAL-USE attribute of the folder that keeps sent mail
DEFAULT_BATCH_SIZE = 50
DEFAULT_BATCH_BYTES = 25 * 1024 * 1024
DEFAULT_TIME_BUDGET = 240.0
# UIDs per RFC822.SIZE / STORE command: keeps command lines far below servers' limits
# (Dovecot: 64 KiB) and the size table of a huge backlog small.
UID_WINDOW = 1000


@dataclass
class ImapSettings:
	"""How to reach and log in to one mailbox. Invalid settings raise ConfigError at once."""

	host: str
	port: int
	security: str  # "ssl" | "starttls" | "none"
	username: str
	password: str = field(default="", repr=False)
	oauth2_token: str = field(default="", repr=False)  # when set, XOAUTH2 is used instead of LOGIN
	ca_file: str | None = None  # CA bundle to trust instead of the system's; checks stay on
	connect_timeout: float = 15.0
	read_timeout: float = 60.0
	folder: str = "INBOX"

	def __post_init__(self) -> None:
		if isinstance(self.host, str):
			self.host = self.host.strip()
		if isinstance(self.security, str):
			self.security = self.security.strip().lower()
		self.validate()

	@property
	def address(self) -> str:
		return f"{self.host}:{self.port}"

	@property
	def secrets(self) -> tuple[str, str]:
		return (self.password, self.oauth2_token)

	def validate(self) -> None:
		if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
			raise ConfigError("IMAP host is missing or contains spaces")
		if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
			raise ConfigError(f"IMAP port must be a number from 1 to 65535, not {self.port!r}")
		if self.security not in SECURITIES:
			raise ConfigError(
				f"IMAP encryption must be one of {', '.join(SECURITIES)}, not {self.security!r}"
			)
		if not isinstance(self.username, str) or not self.username.strip():
			raise ConfigError(f"IMAP username is missing for {self.address}")
		if not self.password and not self.oauth2_token:
			raise ConfigError(f"IMAP password (or OAuth2 token) is missing for {self.address}")
		for name in ("connect_timeout", "read_timeout"):
			value = getattr(self, name)
			if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
				raise ConfigError(f"IMAP {name.replace('_', ' ')} must be a positive number of seconds")
		if not isinstance(self.folder, str) or not self.folder.strip():
			raise ConfigError("IMAP folder is missing")
		if self.ca_file is not None and not os.path.isfile(self.ca_file):
			raise ConfigError(f"CA bundle {self.ca_file} does not exist")


@dataclass(frozen=True)
class FetchedMessage:
	uid: int
	size: int
	raw: bytes = field(repr=False)
	prepared: object = field(default=None, repr=False)  # what drain's ``prepare`` made of raw


@dataclass
class DrainResult:
	"""What one session did.

	``fetched``: messages handed to the callback; ``acknowledged``: those it confirmed;
	``marked_seen``: those then marked read on the server; ``remaining``: unread messages
	not handed over because the time budget ran out (the next run takes them).
	"""

	uidvalidity: int
	uidvalidity_changed: bool
	unseen: int
	fetched: int = 0
	acknowledged: int = 0
	marked_seen: int = 0
	remaining: int = 0
	out_of_time: bool = False
	batches: int = 0
	largest_batch_bytes: int = 0


@dataclass(frozen=True)
class ConnectionReport:
	uidvalidity: int
	messages: int
	unseen: int
	capabilities: tuple[str, ...]
	sent_folder: str | None = None  # the folder the server marks \\Sent, if any


class _TLSWithConnectTimeout(imap_tls.IMAP4_TLS):
	"""imapclient 3.1 drops the connect timeout for SSL: a silent server would hang the
	TCP connect and the TLS handshake forever. Apply it there too."""

	def open(self, host: str = "", port: int = 993, timeout: float | None = None) -> None:
		super().open(host, port, self._timeout if timeout is None else timeout)


class _Client(IMAPClient):
	def _create_IMAP4(self) -> imaplib.IMAP4:
		if self.ssl and not self.stream:
			return _TLSWithConnectTimeout(self.host, self.port, self.ssl_context, self._timeout.connect)
		return super()._create_IMAP4()


class ImapSession:
	"""One logged-in connection (use as a context manager: connects, logs in, logs out)."""

	def __init__(self, settings: ImapSettings) -> None:
		settings.validate()
		self.settings = settings
		self.exists = 0
		self.has_unseen = False
		self._client: IMAPClient | None = None
		self._broken = False

	def __enter__(self) -> ImapSession:
		self.open()
		return self

	def __exit__(self, *exc_info: object) -> None:
		self.close()

	def open(self) -> None:
		"""Connect, secure the connection as configured, and log in."""
		s = self.settings
		context = _ssl_context(s) if s.security != "none" else None
		with self._guard("connecting", timeout=s.connect_timeout):
			self._client = _Client(
				s.host,
				s.port,
				ssl=s.security == "ssl",
				ssl_context=context,
				timeout=SocketTimeout(connect=s.connect_timeout, read=s.read_timeout),
			)
		try:
			if s.security == "starttls":
				self._starttls(context)
			with self._guard("logging in"):
				if s.oauth2_token:
					self._client.oauth2_login(s.username, s.oauth2_token)
				else:
					self._client.login(s.username, s.password)
		except BaseException:
			self.close()
			raise

	def close(self) -> None:
		"""Log out; after a broken connection only close the socket (a LOGOUT would hang)."""
		client, self._client = self._client, None
		if client is None:
			return
		if not self._broken:
			try:
				client.logout()
				return
			except Exception:
				pass
		try:
			client.shutdown()
		except Exception:
			pass

	def capabilities(self) -> tuple[str, ...]:
		with self._guard("reading capabilities"):
			return tuple(_text(c) for c in self._require_client().capabilities())

	def select(self, folder: str | None = None, *, readonly: bool = False) -> int:
		"""Open the folder (INBOX by default); returns its UIDVALIDITY."""
		folder = folder or self.settings.folder
		with self._guard(f"opening folder {folder!r}"):
			info = self._require_client().select_folder(folder, readonly=readonly)
		try:
			uidvalidity = int(info[b"UIDVALIDITY"])
			self.exists = int(info.get(b"EXISTS", 0))
			self.has_unseen = bool(info.get(b"UNSEEN"))  # [UNSEEN n]: the first unread message
		except (KeyError, TypeError, ValueError):
			raise ProtocolError(f"IMAP {self.settings.address}: folder {folder!r} has no valid UIDVALIDITY")
		return uidvalidity

	def unseen_uids(self) -> list[int]:
		with self._guard("searching unread messages"):
			return sorted(int(uid) for uid in self._require_client().search("UNSEEN"))

	def sizes(self, uids: Iterable[int]) -> dict[int, int]:
		"""RFC822.SIZE of each message; a UID missing from the answer was expunged meanwhile."""
		sizes: dict[int, int] = {}
		for window in _windows(sorted(uids), UID_WINDOW):
			with self._guard("reading message sizes"):
				response = self._require_client().fetch(window, ["RFC822.SIZE"])
			for uid in window:
				size = response.get(uid, {}).get(b"RFC822.SIZE")
				if size is not None:
					sizes[uid] = int(size)
		return sizes

	def fetch_batches(
		self,
		uids: Iterable[int],
		batch_size: int = DEFAULT_BATCH_SIZE,
		batch_bytes: int = DEFAULT_BATCH_BYTES,
		prepare: Callable[[bytes], object] | None = None,
	) -> Iterator[list[FetchedMessage]]:
		"""Whole messages in UID order, one batch per BODY.PEEK[] command (never sets \\Seen).

		Each batch holds at most ``batch_size`` messages and ``batch_bytes`` bytes, except
		that a message larger than ``batch_bytes`` comes alone. A batch is fetched only when
		the consumer asks for it; ``prepare`` as in ``fetch_batch``.
		"""
		for batch in self.plan(uids, batch_size, batch_bytes):
			messages = self.fetch_batch(batch, prepare)
			if messages:
				yield messages

	def plan(self, uids: Iterable[int], batch_size: int, batch_bytes: int) -> list[list[int]]:
		"""The batches ``fetch_batches`` would fetch, planned from the messages' sizes."""
		check_batch_limits(batch_size, batch_bytes)
		batches: list[list[int]] = []
		for window in _windows(sorted(uids), UID_WINDOW):
			sizes = self.sizes(window)
			batches += plan_batches(
				[(uid, sizes[uid]) for uid in window if uid in sizes], batch_size, batch_bytes
			)
		return batches

	def fetch_batch(
		self, uids: list[int], prepare: Callable[[bytes], object] | None = None
	) -> list[FetchedMessage]:
		"""These messages, in order; one expunged meanwhile is left out."""
		with self._guard("fetching messages"):
			response = self._require_client().fetch(uids, ["BODY.PEEK[]"])
		messages = []
		for uid in uids:
			raw = response.get(uid, {}).get(b"BODY[]")
			if isinstance(raw, bytes):
				prepared = _prepared(prepare, raw) if prepare else None
				messages.append(FetchedMessage(uid=uid, size=len(raw), raw=raw, prepared=prepared))
		return messages

	def fetch(
		self,
		uids: Iterable[int],
		batch_size: int = DEFAULT_BATCH_SIZE,
		batch_bytes: int = DEFAULT_BATCH_BYTES,
	) -> Iterator[FetchedMessage]:
		for batch in self.fetch_batches(uids, batch_size, batch_bytes):
			yield from batch

	def mark_seen(self, uids: Iterable[int]) -> None:
		for window in _windows(sorted(uids), UID_WINDOW):
			with self._guard("marking messages read"):
				self._require_client().add_flags(window, [SEEN], silent=True)

	def folders(self) -> list[tuple[str, tuple[str, ...]]]:
		"""Every folder's name with its LIST attributes (``\\Sent``, ``\\Noselect``...)."""
		with self._guard("listing folders"):
			listed = self._require_client().list_folders()
		return [(_text(name), tuple(_text(flag) for flag in flags)) for flags, _delimiter, name in listed]

	def list_folder_names(self) -> list[str]:
		"""Folders that can hold messages, for the admin to pick the Sent folder from."""
		return sorted(name for name, flags in self.folders() if "\\Noselect" not in flags)

	def sent_folder(self) -> str | None:
		"""The folder the server marks ``\\Sent`` (SPECIAL-USE); no guessing by name, since a
		folder merely called "Sent" may not be the one the mail clients use."""
		for name, flags in self.folders():
			if _text(SENT).lower() in (flag.lower() for flag in flags):
				return name
		return None

	def append(self, folder: str, raw: bytes, flags: Iterable[bytes] = (SEEN,)) -> None:
		"""Store a message in the folder (APPEND), read by default: what was sent is not news."""
		with self._guard(f"saving a message to folder {folder!r}"):
			self._require_client().append(folder, raw, flags=tuple(flags))

	def _starttls(self, context: ssl.SSLContext) -> None:
		"""Upgrade to TLS, refusing to go on (and send the login) when the server won't."""
		with self._guard("checking STARTTLS", protocol_error=TLSError):
			offered = self._require_client().has_capability("STARTTLS")
		if not offered:
			raise TLSError(
				f"IMAP {self.settings.address} does not offer STARTTLS, so the login would travel "
				"unencrypted; refusing to log in (choose SSL, or None only on a trusted network)"
			)
		with self._guard("starting TLS", protocol_error=TLSError):
			self._require_client().starttls(context)

	def _require_client(self) -> IMAPClient:
		if self._client is None:
			raise MailConnectionError(f"IMAP {self.settings.address}: the session is not connected")
		return self._client

	@contextmanager
	def _guard(
		self, action: str, *, timeout: float | None = None, protocol_error: type[MailError] = ProtocolError
	) -> Iterator[None]:
		"""Turn whatever imaplib, imapclient, socket or ssl raise into the engine's typed errors."""
		try:
			yield
		except MailError:
			raise
		except Exception as exc:
			error = translate_error(
				exc,
				self.settings,
				action,
				timeout=timeout or self.settings.read_timeout,
				protocol_error=protocol_error,
			)
			if isinstance(error, MailConnectionError):
				self._broken = True
			raise error from None


def translate_error(
	exc: BaseException,
	settings: ImapSettings,
	action: str,
	*,
	timeout: float,
	protocol_error: type[MailError] = ProtocolError,
) -> MailError:
	"""The typed error for a failure while ``action``; its text names host:port and never a secret."""
	where = f"IMAP {settings.address}"
	detail = redact(_describe(exc), *settings.secrets)
	if isinstance(exc, imap_errors.LoginError):
		return AuthenticationError(
			f"{where}: the server refused the login of {settings.username!r} ({detail})"
		)
	if _caused_by(exc, TimeoutError):
		hint = ssl_port_hint("IMAP", settings.security, settings.port)
		return MailTimeoutError(f"{where}: no answer within {timeout:g} s while {action}{hint}")
	if isinstance(exc, ssl.SSLError):
		problem = redact(tls_problem(exc, "IMAP", settings.security, settings.port), *settings.secrets)
		return TLSError(f"{where}: {problem} while {action}")
	if isinstance(exc, socket.gaierror):
		return MailConnectionError(f"{where}: the host name cannot be resolved ({detail})")
	if isinstance(exc, ConnectionRefusedError):
		return MailConnectionError(f"{where}: the connection was refused (is the port right?)")
	if isinstance(exc, imaplib.IMAP4.abort | OSError):
		return MailConnectionError(f"{where}: the connection broke while {action} ({detail})")
	if isinstance(exc, imaplib.IMAP4.error):
		return protocol_error(f"{where}: the server refused {action} ({detail})")
	return protocol_error(f"{where}: unexpected answer while {action} ({detail})")


def plan_batches(sized_uids: Iterable[tuple[int, int]], batch_size: int, batch_bytes: int) -> list[list[int]]:
	"""Group (uid, size) pairs, in order, into batches of at most ``batch_size`` messages and
	``batch_bytes`` bytes; a message larger than ``batch_bytes`` forms a batch of its own."""
	check_batch_limits(batch_size, batch_bytes)
	batches: list[list[int]] = []
	current: list[int] = []
	current_bytes = 0
	for uid, size in sized_uids:
		if current and (len(current) >= batch_size or current_bytes + size > batch_bytes):
			batches.append(current)
			current, current_bytes = [], 0
		current.append(uid)
		current_bytes += size
	if current:
		batches.append(current)
	return batches


def check_connection(settings: ImapSettings) -> ConnectionReport:
	"""Log in and open the folder read-only, for a "Test connection" button; fetches nothing."""
	with ImapSession(settings) as session:
		uidvalidity = session.select(readonly=True)
		return ConnectionReport(
			uidvalidity=uidvalidity,
			messages=session.exists,
			unseen=len(session.unseen_uids()),
			capabilities=session.capabilities(),
			sent_folder=session.sent_folder(),
		)


def append_to_sent(settings: ImapSettings, raw: bytes, folder: str | None = None) -> str:
	"""Save a sent letter, read, to the server's ``\\Sent`` folder, else to ``folder``;
	returns the folder used. Without either it raises ConfigError and appends nothing."""
	with ImapSession(settings) as session:
		target = session.sent_folder() or (folder or "").strip()
		if not target:
			raise ConfigError(
				f"IMAP {settings.address}: the server marks no folder as Sent; choose the Sent folder"
			)
		session.append(target, raw)
		return target


def _ssl_context(settings: ImapSettings) -> ssl.SSLContext:
	"""Verification always on: the system's CAs, or only the given bundle."""
	try:
		return ssl.create_default_context(cafile=settings.ca_file)
	except (OSError, ssl.SSLError) as exc:
		raise ConfigError(f"CA bundle {settings.ca_file} cannot be loaded ({_describe(exc)})") from None


def check_batch_limits(batch_size: int, batch_bytes: int) -> None:
	"""Batch limits are whole positive numbers (they come from callers' settings)."""
	for name, value in (("batch size", batch_size), ("batch bytes", batch_bytes)):
		if isinstance(value, bool) or not isinstance(value, int) or value < 1:
			raise ConfigError(f"the {name} of a mail session must be a positive whole number, not {value!r}")


def _prepared(prepare: Callable[[bytes], object], raw: bytes) -> object:
	"""None when ``prepare`` fails: the handler then meets the same failure and deals with it."""
	try:
		return prepare(raw)
	except Exception:
		return None


def _windows(uids: list[int], size: int) -> Iterator[list[int]]:
	for start in range(0, len(uids), size):
		yield uids[start : start + size]


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
	"""imaplib wraps socket errors in its own; look through the chain."""
	seen = set()
	while exc is not None and id(exc) not in seen:
		if isinstance(exc, kind):
			return True
		seen.add(id(exc))
		exc = exc.__cause__ or exc.__context__
	return False


def _describe(exc: BaseException) -> str:
	text = str(exc)
	if text.startswith(("b'", 'b"')):
		text = text[2:-1]
	return text or type(exc).__name__


def _text(value: bytes | str) -> str:
	return value.decode("ascii", "replace") if isinstance(value, bytes) else value
