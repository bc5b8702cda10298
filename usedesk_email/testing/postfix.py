"""A real Postfix (Debian's package) on 127.0.0.1 for tests, in a directory of its own.

Internal channels are fed by an MTA's pipe transport, so the tests run the real one: a
private instance with its own config, queue and data directories under a temp dir, smtpd on
a free port of 127.0.0.1 only, logging to a file (``log``). The caller adds the lines under
test (``main_cf``, ``master_cf``: the README's block) to a minimal base config.

Postfix's master must start as root: it hands the pipe's command to ``user=`` and the other
daemons to ``mail_owner``. Started by root, it is started as it is. Started by an ordinary
user, it runs as root of a user namespace of its own (``unshare`` with the ``newuidmap``
helper of Debian's ``uidmap`` package): that user stays itself inside it and the other ids
come from the user's range in /etc/subuid and /etc/subgid, so Postfix's daemons get their
own ids and the pipe runs its command as the real calling user — which must then be the
``user=`` of the pipe. Nothing else on the machine is touched; the network is the machine's
own (the listener is on 127.0.0.1).

Usage::

        with PostfixServer(main_cf="relay_domains = ...\\n", master_cf="pipe ...\\n") as postfix:
            smtplib.SMTP(postfix.host, postfix.port).sendmail(...)
            postfix.wait_for_log(r"status=sent")
            postfix.flush()  # postqueue -f: retry the deferred mail now
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from usedesk_email.testing.dovecot import group_members
from usedesk_email.testing.ports import HOST, free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
DAEMONS = "/usr/lib/postfix/sbin"
# The daemons a relay that pipes mail needs; chroot off (no copy of /etc in the queue).
BASE_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
	"""The test Postfix could not be set up, started or used."""


class PostfixServer:
	"""A running private Postfix (see the module doc).

	``main_cf`` / ``master_cf``: lines appended to the base configuration.
	``outbound``: (host, port) of an SMTP server that gets all mail Postfix sends out
	(bounces, delay notices); without it such mail is kept undeliverable in the queue.
	``environment``: variables the pipe's commands get (e.g. PYTHONPATH for a checkout).
	"""

	host = HOST

	def __init__(
		self,
		main_cf: str = "",
		master_cf: str = "",
		outbound: tuple[str, int] | None = None,
		environment: Mapping[str, str] | None = None,
	) -> None:
		self.main_cf, self.master_cf = main_cf, master_cf
		self.outbound = outbound
		self.environment = dict(environment or {})
		self.root: Path | None = None
		self.port = 0
		self.process: subprocess.Popen | None = None

	def __enter__(self) -> PostfixServer:
		return self.start()

	def __exit__(self, *exc_info: object) -> None:
		self.stop()

	@property
	def config_dir(self) -> Path:
		return self._require_root() / "conf"

	@property
	def log(self) -> Path:
		return self._require_root() / "maillog"

	def start(self) -> PostfixServer:
		if postfix_program("postfix") is None:
			raise PostfixError("the test Postfix needs Debian's 'postfix' package installed")
		if self.process is not None:
			raise PostfixError("this Postfix is already started")
		self.root = Path(tempfile.mkdtemp(prefix="usedesk-postfix-"))
		try:
			self.root.chmod(0o755)  # smtpd runs as mail_owner and reads below it
			self.config_dir.mkdir()
			for attempt in range(3):
				self.port = free_port()
				self._write_config()
				try:
					self._launch()
					return self
				except PostfixError:
					self._terminate()
					if attempt == 2:
						raise
		except BaseException:
			self.stop()
			raise
		return self

	def stop(self) -> None:
		"""End the master and every daemon it started, and remove the instance's files."""
		self._terminate()
		if self.root is not None:
			# The queue belongs to Postfix's ids: remove it with the rights it was made with.
			subprocess.run(as_postfix_root(["rm", "-rf", str(self.root)]), capture_output=True, timeout=60)
			shutil.rmtree(self.root, ignore_errors=True)
			self.root = None

	# -- using it ------------------------------------------------------------

	def log_text(self) -> str:
		return self.log.read_text(errors="replace") if self.log.exists() else ""

	def wait_for_log(self, pattern: str, timeout: float = 120.0, after: int = 0) -> re.Match:
		"""The first match of ``pattern`` in the mail log (from character ``after`` on)."""
		regex = re.compile(pattern)
		deadline = time.monotonic() + timeout
		while True:
			match = regex.search(self.log_text(), after)
			if match:
				return match
			if time.monotonic() > deadline:
				raise PostfixError(f"no log line matching {pattern!r} in {timeout}s:\n{self.tail()}")
			time.sleep(0.1)

	def flush(self) -> None:
		"""postqueue -f: deliver the deferred mail now instead of at the next retry."""
		self.postfix_command("postqueue", "-f")

	def queue(self) -> str:
		"""postqueue -p: the queue as Postfix lists it (with each deferral's reason)."""
		return self.postfix_command("postqueue", "-p")

	def postfix_command(self, command: str, *args: str) -> str:
		result = subprocess.run(
			as_postfix_root([postfix_program(command) or command, "-c", str(self.config_dir), *args]),
			capture_output=True,
			text=True,
			timeout=60,
		)
		if result.returncode != 0:
			raise PostfixError(f"{command} {' '.join(args)} failed: {result.stderr}")
		return result.stdout

	def tail(self, lines: int = 30) -> str:
		return "\n".join(self.log_text().splitlines()[-lines:])

	# -- internals ------------------------------------------------------------

	def _require_root(self) -> Path:
		if self.root is None:
			raise PostfixError("the test Postfix is not started")
		return self.root

	def _write_config(self) -> None:
		root = self._require_root()
		names = " ".join(self.environment)
		imported = " ".join(f"{k}={v}" for k, v in self.environment.items())
		outbound = (
			f"smtp:[{self.outbound[0]}]:{self.outbound[1]}"
			if self.outbound
			else "error:this test Postfix sends no mail out"
		)
		base = f"""# Generated by usedesk_email.testing.postfix for tests; not for production.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file_prefixes = {root}
maillog_file = {self.log}
inet_interfaces = {HOST}
inet_protocols = ipv4
myhostname = mx.usedesk-test.invalid
mydomain = usedesk-test.invalid
myorigin = $myhostname
mydestination =
# Nobody is trusted: the test clients on 127.0.0.1 stand for the internet.
mynetworks =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtpd_banner = $myhostname ESMTP usedesk_email test Postfix
default_transport = {outbound}
delay_warning_time = 0
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME {imported}
export_environment = TZ MAIL_CONFIG LANG {names}
"""
		(self.config_dir / "main.cf").write_text(base + self.main_cf)
		smtpd = f"{HOST}:{self.port} inet n       -       n       -       -       smtpd\n"
		(self.config_dir / "master.cf").write_text(smtpd + BASE_MASTER_CF + self.master_cf)

	def _launch(self) -> None:
		root = self._require_root()
		setup = subprocess.run(
			as_postfix_root(
				[
					"sh",
					"-c",
					'mkdir -p "$1/data" "$1/queue" && chown postfix: "$1/data" && "$2" -c "$1/conf" check',
					"sh",
					str(root),
					postfix_program("postfix"),
				]
			),
			capture_output=True,
			text=True,
			timeout=60,
		)
		if setup.returncode != 0:
			raise PostfixError(f"postfix check failed:\n{setup.stdout}{setup.stderr}")
		with open(root / "master.stderr", "wb") as stderr:
			self.process = subprocess.Popen(
				as_postfix_root([f"{DAEMONS}/master", "-c", str(self.config_dir)]),
				stdin=subprocess.DEVNULL,
				stdout=stderr,
				stderr=subprocess.STDOUT,
				start_new_session=True,
			)
		deadline = time.monotonic() + START_TIMEOUT
		while True:
			if self.process.poll() is not None:
				raise PostfixError(f"Postfix's master exited at start:\n{self._startup_output()}")
			try:
				with socket.create_connection((self.host, self.port), timeout=2) as sock:
					if sock.recv(256).startswith(b"220"):
						return
			except OSError:
				pass
			if time.monotonic() > deadline:
				raise PostfixError(f"Postfix did not answer on port {self.port}:\n{self._startup_output()}")
			time.sleep(0.1)

	def _startup_output(self) -> str:
		stderr = self._require_root() / "master.stderr"
		text = stderr.read_text(errors="replace") if stderr.exists() else ""
		return text + self.tail()

	def _terminate(self) -> None:
		process, self.process = self.process, None
		if process is None:
			return
		if process.poll() is None:
			process.send_signal(signal.SIGTERM)
		try:
			process.wait(STOP_TIMEOUT)
		except subprocess.TimeoutExpired:
			_kill_group(process.pid)
			process.wait(STOP_TIMEOUT)
		deadline = time.monotonic() + STOP_TIMEOUT
		while group_members(process.pid):  # the daemons, in the master's process group
			if time.monotonic() > deadline:
				_kill_group(process.pid)
				break
			time.sleep(0.05)


def postfix_program(name: str) -> str | None:
	"""A Postfix command, also where an ordinary user's PATH does not reach (/usr/sbin)."""
	return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def as_postfix_root(argv: list[str]) -> list[str]:
	"""The command line that runs ``argv`` as root for Postfix (see the module doc)."""
	if os.geteuid() == 0:
		return argv
	if shutil.which("newuidmap") is None:
		raise PostfixError(
			"the test Postfix needs root, or for an ordinary user the 'uidmap' package (newuidmap)"
		)
	user = pwd.getpwuid(os.getuid()).pw_name
	uids, gids = _subordinate("/etc/subuid", user), _subordinate("/etc/subgid", user)
	return [
		"unshare",
		f"--map-user={os.getuid()}",
		f"--map-users={uids[0]},0,{uids[1]}",
		f"--map-group={os.getgid()}",
		f"--map-groups={gids[0]},0,{gids[1]}",
		"--setuid=0",
		"--setgid=0",
		*argv,
	]


def _subordinate(path: str, user: str) -> tuple[int, int]:
	"""The user's first range of subordinate ids; it must cover Postfix's own ids."""
	needed = max(pwd.getpwnam("postfix").pw_uid, _group_id("postdrop")) + 1
	try:
		lines = Path(path).read_text().splitlines()
	except OSError:
		lines = []
	for line in lines:
		name, _sep, rest = line.partition(":")
		if name in (user, str(os.getuid())) and rest.count(":") == 1:
			start, count = (int(part) for part in rest.split(":"))
			if count >= needed:
				return start, count
	raise PostfixError(
		f"{path} gives {user} no range of at least {needed} ids for the test Postfix "
		f"(as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user})"
	)


def _group_id(name: str) -> int:
	import grp

	try:
		return grp.getgrnam(name).gr_gid
	except KeyError:
		raise PostfixError(f"no group {name!r}: is Debian's 'postfix' package installed?") from None


def _kill_group(group: int) -> None:
	try:
		os.killpg(group, signal.SIGKILL)
	except (ProcessLookupError, PermissionError):
		pass
