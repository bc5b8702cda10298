"""A real Dovecot IMAP server on 127.0.0.1 for tests and the demo command.

Tests of the mail engine must run against a real server, not a mock, so this starts
Dovecot (2.3) from a generated config in a directory of its own. It needs the
``dovecot-imapd`` and ``openssl`` packages; nothing else on the machine is touched.

It runs as whoever starts it. Under root, Dovecot switches the mail processes to the uid
of ``nobody`` and its own processes to its ``dovecot``/``dovenull`` users, as a system
Dovecot does. Under an ordinary user (a bench's owner running Frappe's tests) every
Dovecot process stays that user: ``default_internal_user``, ``default_login_user``,
``default_internal_group`` and the mail uid/gid are set to the current user and group,
login processes are not chrooted, and the listeners are unprivileged ports on 127.0.0.1.

Usage::

        with DovecotServer(users={"alice": "secret"}) as server:
            server.deliver("alice", raw_bytes)  # unread
            server.deliver("alice", other, seen=True)  # read
            server.append("alice", raw_bytes)  # unread, through Dovecot: IDLE hears of it
            server.flags("alice")  # {1: set(), 2: {"\\Seen"}}

Listeners, all on ``host`` (127.0.0.1) and on free ports picked at start:

- ``plain_port``: plain IMAP that offers STARTTLS (plain-text login is allowed too);
- ``ssl_port``: IMAP over TLS (imaps);
- ``no_tls_port``: plain IMAP that does NOT offer STARTTLS. Dovecot 2.3 advertises
  STARTTLS on every plain listener once ``ssl`` is on, so this is a second Dovecot
  instance with ``ssl = no`` sharing the same users and Maildirs.

TLS uses a throwaway CA made with the openssl CLI; ``ca_file`` is its certificate, for a
client to trust. The server certificate names ``127.0.0.1`` and ``localhost``.

Users live in passwd-files (one per user, plain passwords) and mail in
``<root>/mail/<user>/Maildir``. ``deliver`` writes straight into the Maildir, so a backlog
of thousands of messages is filled in seconds; the n-th message delivered to a fresh
mailbox gets UID n. ``flags`` reads the flags over IMAP; ``reset_uidvalidity`` and
``clear`` work on the Maildir and wait for the user's sessions to end first. ``sessions``
counts a user's logged-in IMAP sessions and ``disconnect`` ends them as a server restart
(BYE) or crash (the connection just closes) would.
Failed logins are answered at once and never slow down later ones (no auth penalty).

OAuth2 (opt-in): with ``oauth2_introspection_url`` both instances also offer the SASL
mechanisms XOAUTH2 and OAUTHBEARER and check a bearer token by POSTing ``token=...`` to
that URL (RFC 7662; see ``usedesk_email.testing.oauth2_server``); the token is accepted
when the answer has ``"active": true`` and ``"username"`` equal to the user logging in.
Password logins keep using the passwd-files. Without the option the config is unchanged.
With ``idle=False`` the server leaves IDLE out of its capabilities, as some servers do.

``stop`` (or leaving the ``with`` block) ends every Dovecot process it started; each
instance runs in a process group of its own (``process_groups``), which a test can check
with ``pgrep -g``.
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from imapclient import IMAPClient

from usedesk_email.testing.certificates import Certificates, make_certificates
from usedesk_email.testing.ports import HOST, free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# Unix sockets live under base_dir; their paths must stay below the kernel's 108 bytes.
MAX_BASE_DIR = 70
NO_IDLE_CAPABILITY = (
	"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
	"THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
	"LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
	"LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ "
	"NOTIFY SPECIAL-USE"
)
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+@-]{0,63}$")


class DovecotError(RuntimeError):
	"""The test server could not be set up, started or used."""


class Mailbox(NamedTuple):
	"""One test user on a running server: what a test needs to log in."""

	server: DovecotServer
	user: str
	password: str


@dataclass
class _Instance:
	"""One Dovecot master process with its own config, runtime dir and log."""

	name: str
	root: Path
	ssl: bool
	process: subprocess.Popen | None = field(default=None, repr=False)

	@property
	def config(self) -> Path:
		return self.root / f"{self.name}.conf"

	@property
	def base_dir(self) -> Path:
		return self.root / f"run-{self.name}"

	@property
	def state_dir(self) -> Path:
		return self.root / f"state-{self.name}"

	@property
	def log(self) -> Path:
		return self.root / f"{self.name}.log"

	@property
	def stderr(self) -> Path:
		return self.root / f"{self.name}.stderr"


class DovecotServer:
	"""A running Dovecot with a STARTTLS, an SSL and a no-STARTTLS listener (see module doc).

	``root``: the directory for config, runtime files, logs and mail. When omitted, a fresh
	directory under the system temp dir is made and removed again by ``stop``. A given
	directory is kept; under root it and its parents must be traversable by ``nobody``.
	``users``: user name -> password, created at start (``add_user`` adds more later).
	``oauth2_introspection_url``: turns on XOAUTH2/OAUTHBEARER logins checked there.
	``idle``: False leaves IDLE out of the capabilities, as some servers do.
	"""

	host = HOST

	def __init__(
		self,
		root: Path | str | None = None,
		users: Mapping[str, str] | None = None,
		oauth2_introspection_url: str | None = None,
		idle: bool = True,
	) -> None:
		if oauth2_introspection_url is not None and not re.match(r"^https?://\S+$", oauth2_introspection_url):
			raise DovecotError(f"{oauth2_introspection_url!r} is not an http(s) URL without spaces")
		self.oauth2_introspection_url = oauth2_introspection_url
		self.idle = idle
		self._own_root = root is None
		self.root = Path(root) if root is not None else None
		self._users: dict[str, str] = {}
		self._initial_users = dict(users or {})
		self._instances: list[_Instance] = []
		self._certificates: Certificates | None = None
		self._lock = threading.Lock()
		self._sequence = itertools.count(1)
		self.plain_port = 0
		self.ssl_port = 0
		self.no_tls_port = 0
		self._identity = _identity()
		self._uid, self._gid = self._identity.uid, self._identity.gid

	def __enter__(self) -> DovecotServer:
		return self.start()

	def __exit__(self, *exc_info: object) -> None:
		self.stop()

	# -- paths -------------------------------------------------------------

	@property
	def ca_file(self) -> Path:
		"""The CA certificate that signed the server's certificate: give it to a client to trust."""
		return self._require_certificates().ca_file

	@property
	def passwd_dir(self) -> Path:
		return self._require_root() / "users"

	@property
	def log_files(self) -> list[Path]:
		return [instance.log for instance in self._instances]

	@property
	def process_groups(self) -> list[int]:
		"""Process-group ids of the running instances (each Dovecot master leads its own group)."""
		return [i.process.pid for i in self._instances if i.process is not None]

	@property
	def oauth2_config(self) -> Path:
		"""The oauth2 passdb's settings file (written at start when OAuth2 is on)."""
		return self._require_root() / "oauth2.conf.ext"

	def maildir(self, user: str) -> Path:
		return self._require_root() / "mail" / user / "Maildir"

	# -- lifecycle -------------------------------------------------------------

	def start(self) -> DovecotServer:
		if _dovecot_binary() is None or shutil.which("openssl") is None:
			raise DovecotError("the test Dovecot needs the 'dovecot-imapd' and 'openssl' packages installed")
		if self._instances:
			raise DovecotError("this Dovecot is already started")
		if self.root is None:
			self.root = Path(tempfile.mkdtemp(prefix="usedesk-dovecot-"))
		try:
			self._prepare_root()
			for name, password in self._initial_users.items():
				self.add_user(name, password)
			self._launch_with_retries()
		except BaseException:
			self.stop()
			raise
		return self

	def stop(self) -> None:
		"""End every process this server started and wait until they are gone."""
		_terminate(self._instances)
		self._instances = []
		if self._own_root and self.root is not None:
			shutil.rmtree(self.root, ignore_errors=True)
			self.root = None
			self._users = {}
			self._certificates = None

	# -- users and mail -------------------------------------------------------

	def add_user(self, name: str, password: str) -> None:
		"""Create a user with an empty INBOX; works while the server runs."""
		if not _USER_NAME.match(name):
			raise DovecotError(f"user name {name!r} is not allowed here (letters, digits, . _ + @ -)")
		if not password or any(c in password for c in ":\r\n"):
			raise DovecotError("a test password must be non-empty without ':' or line breaks")
		self._write_passwd(name, password)
		self._users[name] = password
		for sub in ("cur", "new", "tmp"):
			_make_dir(self.maildir(name) / sub, self._uid, self._gid)

	def new_mailbox(self, prefix: str = "user") -> Mailbox:
		"""A fresh user with a random password, so each test starts from an empty INBOX."""
		user = f"{prefix}-{secrets.token_hex(6)}"
		password = secrets.token_urlsafe(12)
		self.add_user(user, password)
		return Mailbox(self, user, password)

	def password(self, user: str) -> str:
		try:
			return self._users[user]
		except KeyError:
			raise DovecotError(f"no test user {user!r} on this server") from None

	def deliver(self, user: str, raw: bytes, *, seen: bool = False) -> None:
		"""Put one message into the user's INBOX, unread by default.

		Written straight into the Maildir (tmp/ then renamed into new/, or into cur/ with
		the S flag when ``seen``); Dovecot picks it up on the next sync. Messages get UIDs
		in delivery order because the file names sort in that order.
		"""
		self.password(user)
		maildir = self.maildir(user)
		with self._lock:
			sequence = next(self._sequence)
		name = f"{int(time.time())}.M{sequence}P{os.getpid()}.usedesk,S={len(raw)}"
		temporary = maildir / "tmp" / name
		descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
		try:
			os.fchown(descriptor, self._uid, self._gid)
			view = memoryview(raw)
			while view:
				view = view[os.write(descriptor, view) :]
		finally:
			os.close(descriptor)
		target = maildir / "cur" / f"{name}:2,S" if seen else maildir / "new" / name
		os.rename(temporary, target)

	def append(self, user: str, raw: bytes) -> None:
		"""Put one unread message into the user's INBOX through Dovecot itself (IMAP APPEND),
		as its LDA or LMTP delivers: sessions in IDLE hear of it at once. A file written by
		``deliver`` reaches them at Dovecot's next look at the Maildir, which can be its
		fallback check 30 s later when the file appears just as IDLE begins."""
		with self._client(user) as client:
			client.append("INBOX", raw)

	def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
		"""Each message's flags by UID, read over a fresh IMAP connection (EXAMINE, read-only).

		``\\Recent`` is left out: it only says which session saw a message first.
		"""
		with self._client(user) as client:
			info = client.select_folder(folder, readonly=True)
			if not info.get(b"EXISTS"):
				return {}
			response = client.fetch("1:*", ["FLAGS"])
		return {
			int(uid): {_text(flag) for flag in data[b"FLAGS"]} - {"\\Recent"}
			for uid, data in response.items()
			if b"FLAGS" in data
		}

	def create_folder(self, user: str, folder: str) -> None:
		"""A folder in the user's mailbox ("Sent" gets the \\Sent attribute, see the config)."""
		with self._client(user) as client:
			client.create_folder(folder)

	def messages(self, user: str, folder: str) -> list[bytes]:
		"""The whole messages of a folder, in UID order (read-only)."""
		with self._client(user) as client:
			if not client.select_folder(folder, readonly=True).get(b"EXISTS"):
				return []
			response = client.fetch("1:*", ["BODY.PEEK[]"])
		return [response[uid][b"BODY[]"] for uid in sorted(response)]

	def uidvalidity(self, user: str) -> int:
		with self._client(user) as client:
			return int(client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"])

	def reset_uidvalidity(self, user: str) -> None:
		"""Make Dovecot give the INBOX a new UIDVALIDITY while keeping its messages and flags.

		Removes the uid list and the indexes; Dovecot rebuilds them on the next access
		and hands out the next UIDVALIDITY from its counter, so the value always changes.
		Waits for the user's IMAP sessions to end first (a client still logged in fails).
		"""
		self._wait_for_sessions_to_end(user)
		maildir = self.maildir(user)
		for pattern in ("dovecot-uidlist*", "dovecot.index*", "dovecot.list.index*"):
			for path in maildir.glob(pattern):
				path.unlink()

	def disconnect(self, user: str, *, crash: bool = False) -> int:
		"""End the user's IMAP sessions as a server does: SIGTERM makes the session say BYE
		first (a restart), ``crash`` kills it and the connection just closes. Returns how many."""
		marker = f"/imap [{user} ".encode()
		ended = 0
		for group in self.process_groups:
			for pid in group_members(group):
				if marker in _cmdline(pid):
					try:
						os.kill(pid, signal.SIGKILL if crash else signal.SIGTERM)
						ended += 1
					except ProcessLookupError:
						pass
		return ended

	def sessions(self, user: str) -> int:
		"""How many IMAP sessions the user has logged in right now."""
		marker = f"/imap [{user} ".encode()
		return sum(marker in _cmdline(pid) for group in self.process_groups for pid in group_members(group))

	def clear(self, user: str) -> None:
		"""Delete every message of the user's INBOX (UIDVALIDITY stays)."""
		self._wait_for_sessions_to_end(user)
		maildir = self.maildir(user)
		for sub in ("new", "cur", "tmp"):
			for path in (maildir / sub).iterdir():
				path.unlink()

	# -- internals -------------------------------------------------------------

	def _require_root(self) -> Path:
		if self.root is None:
			raise DovecotError("the test Dovecot is not started")
		return self.root

	def _wait_for_sessions_to_end(self, user: str) -> None:
		"""An imap process may still write the indexes for a moment after LOGOUT."""
		deadline = time.monotonic() + STOP_TIMEOUT
		while self.sessions(user):
			if time.monotonic() > deadline:
				raise DovecotError(f"user {user!r} still has an IMAP session open; log it out first")
			time.sleep(0.02)

	def _require_certificates(self) -> Certificates:
		if self._certificates is None:
			raise DovecotError("the test Dovecot is not started")
		return self._certificates

	def _client(self, user: str) -> IMAPClient:
		client = IMAPClient(self.host, self.plain_port, ssl=False, timeout=30)
		client.login(user, self.password(user))
		return client

	def _prepare_root(self) -> None:
		root = self._require_root()
		root.mkdir(parents=True, exist_ok=True)
		root.chmod(0o755)
		if self._identity.privileged:
			_check_reachable(root)
		if len(str(root)) + len("/run-notls") > MAX_BASE_DIR:
			raise DovecotError(f"{root} is too long a path for Dovecot's sockets; use a shorter directory")
		_make_dir(root / "mail", self._uid, self._gid)
		self._certificates = make_certificates(root / "tls")
		self.passwd_dir.mkdir(mode=0o755, exist_ok=True)
		if self.oauth2_introspection_url is not None:
			self._write_oauth2_config()
		self._instances = [_Instance("tls", root, ssl=True), _Instance("notls", root, ssl=False)]

	def _write_passwd(self, name: str, password: str) -> None:
		"""One passwd-file per user: Dovecot reads a new file at once, while it rechecks a
		changed file at most once a second (a user added just before a login would fail)."""
		passwd = self.passwd_dir / f"{name}.passwd"
		temporary = passwd.with_suffix(".tmp")
		temporary.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
		temporary.chmod(0o644)
		temporary.replace(passwd)

	def _write_oauth2_config(self) -> None:
		"""Settings of the oauth2 passdb, shared by both instances (read by the auth process,
		which runs as the unprivileged ``dovecot`` user, hence world-readable)."""
		self.oauth2_config.write_text(
			"# Generated by usedesk_email.testing.dovecot for tests; not for production.\n"
			"introspection_mode = post\n"
			f"introspection_url = {self.oauth2_introspection_url}\n"
			"username_attribute = username\n"
			"active_attribute = active\n"
			"active_value = true\n"
			# A provider that hangs fails the login within seconds, not the client's timeout.
			"timeout_msecs = 5000\n"
		)
		self.oauth2_config.chmod(0o644)

	def _launch_with_retries(self, attempts: int = 3) -> None:
		"""Start both instances; new ports are picked if another process took one meanwhile."""
		for attempt in range(1, attempts + 1):
			self.plain_port, self.ssl_port, self.no_tls_port = _distinct_free_ports(3)
			try:
				for instance in self._instances:
					self._launch(instance)
				return
			except DovecotError:
				_terminate(self._instances)
				if attempt == attempts:
					raise

	def _launch(self, instance: _Instance) -> None:
		for directory in (instance.base_dir, instance.state_dir):
			directory.mkdir(exist_ok=True)
		instance.config.write_text(self._render_config(instance))
		with open(instance.stderr, "wb") as stderr:
			instance.process = subprocess.Popen(
				[_dovecot_binary() or "dovecot", "-F", "-c", str(instance.config)],
				stdin=subprocess.DEVNULL,
				stdout=stderr,
				stderr=subprocess.STDOUT,
				start_new_session=True,
			)
		ports = [self.plain_port, self.ssl_port] if instance.ssl else [self.no_tls_port]
		deadline = time.monotonic() + START_TIMEOUT
		for port in ports:
			self._wait_for_greeting(instance, port, tls=port == self.ssl_port, deadline=deadline)

	def _wait_for_greeting(self, instance: _Instance, port: int, *, tls: bool, deadline: float) -> None:
		context = ssl.create_default_context(cafile=str(self.ca_file)) if tls else None
		while True:
			if instance.process is None or instance.process.poll() is not None:
				raise DovecotError(f"Dovecot ({instance.name}) exited at start:\n{_tail(instance)}")
			try:
				with socket.create_connection((self.host, port), timeout=2) as sock:
					if context is not None:
						with context.wrap_socket(sock, server_hostname=self.host) as tls_sock:
							greeting = tls_sock.recv(256)
					else:
						greeting = sock.recv(256)
				if greeting.startswith(b"* OK"):
					return
			except OSError:
				pass
			if time.monotonic() > deadline:
				raise DovecotError(
					f"Dovecot ({instance.name}) did not answer on port {port}:\n{_tail(instance)}"
				)
			time.sleep(0.05)

	def _render_config(self, instance: _Instance) -> str:
		root = self._require_root()
		certificates = self._require_certificates()
		ssl_port = self.ssl_port if instance.ssl else 0
		plain_port = self.plain_port if instance.ssl else self.no_tls_port
		mechanisms, passwd_mechanisms, oauth2_passdb = "plain login", "", ""
		# Dovecot 2.3's own list after login, less IDLE.
		capability = "" if self.idle else f"imap_capability = {NO_IDLE_CAPABILITY}\n"
		if self.oauth2_introspection_url is not None:
			mechanisms = "plain login xoauth2 oauthbearer"
			# PLAIN/LOGIN go only to the passwd-files and tokens only to the provider, so a
			# password is never taken for a token or the other way round.
			passwd_mechanisms = "  mechanisms = plain login\n"
			oauth2_passdb = (
				"passdb {\n"
				"  driver = oauth2\n"
				"  mechanisms = xoauth2 oauthbearer\n"
				f"  args = {self.oauth2_config}\n"
				"}\n"
			)
		return f"""# Generated by usedesk_email.testing.dovecot for tests; not for production.
instance_name = usedesk-{instance.name}-{plain_port}
protocols = imap
listen = {HOST}
base_dir = {instance.base_dir}
state_dir = {instance.state_dir}
log_path = {instance.log}
login_greeting = usedesk_email test Dovecot ready.
# Process titles name the user ("dovecot/imap [alice 127.0.0.1 ...]"), so the server
# can wait for a user's sessions to end before touching the Maildir behind Dovecot.
verbose_proctitle = yes

ssl = {"yes" if instance.ssl else "no"}
ssl_cert = <{certificates.cert_file}
ssl_key = <{certificates.key_file}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
# Tests log in wrongly on purpose: answer failures at once, and keep the auth process
# away from anvil's per-IP penalty, which would delay every later login from 127.0.0.1.
auth_failure_delay = 0
{capability}# Real-time listeners keep one IDLE connection per mailbox open, each an imap process (and,
# over TLS, an imap-login process relaying it): Dovecot's default of 100 would refuse the
# 101st.
default_process_limit = 1000
default_client_limit = 4000

mail_location = maildir:{root / "mail"}/%u/Maildir
# A folder named Sent carries the SPECIAL-USE \\Sent attribute once a test creates it
# (auto = no: a mailbox without one stands for a server that marks no Sent folder).
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    auto = no
    special_use = \\Sent
  }}
}}
mail_uid = {self._uid}
mail_gid = {self._gid}
first_valid_uid = {self._uid}
first_valid_gid = {self._gid}
{self._identity.config()}
passdb {{
  driver = passwd-file
{passwd_mechanisms}  args = scheme=PLAIN {self.passwd_dir}/%u.passwd
}}
{oauth2_passdb}userdb {{
  driver = static
  args = home={root / "mail"}/%u
}}

service imap-login {{
{self._identity.chroot()}  inet_listener imap {{
    address = {HOST}
    port = {plain_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
{self._identity.chroot()}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _dovecot_binary() -> str | None:
	"""Dovecot lives in /usr/sbin, which an ordinary user's PATH (a bench's owner) lacks."""
	return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/local/sbin:/usr/sbin:/sbin")


@dataclass(frozen=True)
class _Identity:
	"""Who Dovecot's processes run as: mail processes (``uid``/``gid``) and, when not started
	by root, its internal and login processes too (``user``/``group``)."""

	uid: int
	gid: int
	privileged: bool
	user: str = ""
	group: str = ""

	def config(self) -> str:
		"""Settings that keep an unprivileged Dovecot from switching to users it cannot become."""
		if self.privileged:
			return ""
		return (
			"# Started by an ordinary user: every process stays that user.\n"
			f"default_internal_user = {self.user}\n"
			f"default_internal_group = {self.group}\n"
			f"default_login_user = {self.user}\n"
		)

	def chroot(self) -> str:
		"""A service's chroot line: only root can chroot, so an ordinary user's Dovecot has none."""
		return "" if self.privileged else "  chroot =\n"


def _identity() -> _Identity:
	"""Root: mail processes as ``nobody`` (Dovecot refuses root for them). Anyone else: all
	processes as the current user and group."""
	if os.geteuid() == 0:
		try:
			entry = pwd.getpwnam("nobody")
		except KeyError:
			raise DovecotError(
				"the system has no 'nobody' user for the test Dovecot's mail processes"
			) from None
		return _Identity(entry.pw_uid, entry.pw_gid, privileged=True)
	uid, gid = os.geteuid(), os.getegid()
	try:
		user = pwd.getpwuid(uid).pw_name
		group = grp.getgrgid(gid).gr_name
	except KeyError:
		raise DovecotError(
			f"uid {uid} / gid {gid} have no user or group name for Dovecot's settings"
		) from None
	return _Identity(uid, gid, privileged=False, user=user, group=group)


def _make_dir(path: Path, uid: int, gid: int) -> None:
	"""Create a directory chain owned by the mail user (below the server root)."""
	missing = []
	while not path.exists():
		missing.append(path)
		path = path.parent
	for directory in reversed(missing):
		directory.mkdir(mode=0o700)
		os.chown(directory, uid, gid)
	if not missing:
		os.chown(path, uid, gid)


def _check_reachable(root: Path) -> None:
	"""Fail early and clearly when 'nobody' cannot reach the mail below ``root``."""
	for directory in [root, *root.parents]:
		if not directory.stat().st_mode & 0o001:
			raise DovecotError(
				f"{directory} is not traversable by other users, so Dovecot's mail processes cannot "
				"reach the mail; use a directory under /tmp or leave root unset"
			)


def _distinct_free_ports(count: int) -> list[int]:
	ports: set[int] = set()
	while len(ports) < count:
		ports.add(free_port(HOST))
	return sorted(ports)


def _terminate(instances: list[_Instance]) -> None:
	"""Stop Dovecot masters (together: each takes about a second) and make sure no process
	of their groups survives."""
	running = [i.process for i in instances if i.process is not None]
	for process in running:
		if process.poll() is None:
			process.send_signal(signal.SIGTERM)
	for process in running:
		try:
			process.wait(STOP_TIMEOUT)
		except subprocess.TimeoutExpired:
			_kill_group(process.pid)
			process.wait(STOP_TIMEOUT)
		deadline = time.monotonic() + STOP_TIMEOUT
		while group_members(process.pid):
			if time.monotonic() > deadline:
				_kill_group(process.pid)
				break
			time.sleep(0.05)
	for instance in instances:
		instance.process = None


def group_members(group: int) -> list[int]:
	"""Live (non-zombie) processes of a process group.

	Zombies are left out: a dead child handed to init stays listed until init reaps it,
	which some container inits do only every few seconds.
	"""
	members = []
	for stat in Path("/proc").glob("[0-9]*/stat"):
		try:
			text = stat.read_text()
		except OSError:
			continue
		# Fields after the parenthesised command: state, ppid, pgrp, ...
		state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
		if int(pgrp) == group and state != "Z":
			members.append(int(stat.parent.name))
	return members


def _cmdline(pid: int) -> bytes:
	try:
		return Path(f"/proc/{pid}/cmdline").read_bytes()
	except OSError:
		return b""


def _kill_group(group: int) -> None:
	try:
		os.killpg(group, signal.SIGKILL)
	except ProcessLookupError:
		pass


def _tail(instance: _Instance, lines: int = 20) -> str:
	text = ""
	for path in (instance.stderr, instance.log):
		if path.exists():
			text += path.read_text(errors="replace")
	return "\n".join(text.splitlines()[-lines:])


def _text(value: bytes | str) -> str:
	return value.decode() if isinstance(value, bytes) else value
