"""The Postfix set-up that pipes an Internal channel's mail into a site, as text to paste.

Rendered from facts about one bench and site (absolute paths, the bench's owner, the inbound
domain, the size cap), because a pipe transport runs with PATH=/usr/bin:/bin, no HOME and
in Postfix's spool directory: nothing may be left for Postfix to find. The README's block,
`bench --site S usedesk-email postfix-config` and the tests' Postfix all come from here.
Frappe is not imported, so the engine tests can start a Postfix with it.
"""

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass

SERVICE = "usedesk"
# Postfix counts the message as it queues it, with the Received: header it adds, and the
# pipe hands the command a Return-Path: line too: the MTA's limit is the site's cap plus
# room for those, and `deliver` accepts whatever this limit let through, so no message is
# accepted over SMTP only to be bounced later for its size.
MTA_HEADROOM = 64 * 1024
PIPE_HEADROOM = 2 * MTA_HEADROOM
RECIPIENTS_FILE = "postfix-recipients"


@dataclass(frozen=True)
class PostfixSetup:
	bench: str  # absolute path of the bench
	site: str
	domain: str  # the inbound mail domain of the channels' internal addresses
	user: str  # the bench's owner: the pipe runs `deliver` as this user
	max_message_bytes: int  # the site's cap (Email Channel Settings)

	@property
	def sites(self) -> str:
		return f"{self.bench}/sites"

	@property
	def python(self) -> str:
		return f"{self.bench}/env/bin/python"

	@property
	def recipients(self) -> str:
		"""The relay recipient table the site writes (and postmaps) when channels change."""
		return f"{self.sites}/{self.site}/usedesk_email/{RECIPIENTS_FILE}"

	@property
	def message_size_limit(self) -> int:
		return mta_size_limit(self.max_message_bytes)


def mta_size_limit(max_message_bytes: int) -> int:
	return max_message_bytes + MTA_HEADROOM


def master_cf(setup: PostfixSetup) -> str:
	"""The pipe service: absolute paths only, run as the bench's owner from <bench>/sites,
	one recipient per delivery (`${recipient}` is then one address)."""
	return (
		f"{SERVICE}   unix  -       n       n       -       4       pipe\n"
		f"  flags=Rq user={setup.user} directory={setup.sites} null_sender=\n"
		f"  argv={setup.python} -m frappe.utils.bench_helper frappe --site {setup.site}"
		" usedesk-email deliver --recipient ${recipient}\n"
	)


def main_cf(setup: PostfixSetup) -> str:
	"""Relaying for the inbound domain only to listed addresses, through the pipe.

	relay_recipient_maps makes Postfix refuse an unknown address during the SMTP
	conversation (550 5.1.1), so it never accepts mail it would bounce to a forged sender.
	"""
	return (
		f"relay_domains = {setup.domain}\n"
		f"relay_recipient_maps = hash:{setup.recipients}\n"
		f"transport_maps = inline:{{ {setup.domain}={SERVICE}: }}\n"
		f"{SERVICE}_destination_recipient_limit = 1\n"
		f"message_size_limit = {setup.message_size_limit}\n"
	)


def config_block(setup: PostfixSetup) -> str:
	"""Both parts as one paste-able text, as the README and `postfix-config` show it."""
	return (
		"# /etc/postfix/master.cf\n"
		f"{master_cf(setup)}"
		"\n"
		"# /etc/postfix/main.cf (merge with existing relay_domains / transport_maps values)\n"
		f"{main_cf(setup)}"
		"# while testing, keep refused mail in the queue instead of bouncing it:\n"
		"# soft_bounce = yes\n"
	)


def postmap_command() -> str | None:
	"""Postfix's postmap, also where an ordinary user's PATH does not reach (/usr/sbin)."""
	return shutil.which("postmap", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


def write_recipient_table(path: str, addresses: list[str]) -> bool:
	"""The relay recipient table (`address OK` lines) and its hash database beside it.

	Each file is written under a new name and renamed into place, so Postfix never reads a
	half-written table, and its smtpd processes see the replaced file (its old inode has no
	link left) and restart with the new one before their next client. One writer at a time
	(a lock file), so an older list never overwrites a newer one. postmap runs with a config
	directory of its own (an empty main.cf): it needs one, and /etc/postfix may not be
	readable or even exist on the site's side. Returns False when postmap is not installed
	(only the text is written then).
	"""
	directory = os.path.dirname(path)
	config = os.path.join(directory, "postmap-config")
	for new_directory in (directory, config):
		if not os.path.isdir(new_directory):
			os.makedirs(new_directory)
			_owned_as_parent(new_directory)
	if not os.path.exists(os.path.join(config, "main.cf")):
		with open(os.path.join(config, "main.cf"), "w") as f:
			f.write("# Empty on purpose: postmap needs a main.cf to read.\n")
		_owned_as_parent(os.path.join(config, "main.cf"))
	text = "".join(f"{address} OK\n" for address in sorted(set(addresses)))
	new_lock = not os.path.exists(f"{path}.lock")
	with open(f"{path}.lock", "a") as lock:
		if new_lock:
			_owned_as_parent(f"{path}.lock")
		fcntl.flock(lock, fcntl.LOCK_EX)
		with open(f"{path}.new", "w") as f:
			f.write(text)
		os.chmod(f"{path}.new", 0o644)
		postmap = postmap_command()
		if postmap:
			subprocess.run(
				[postmap, "-c", config, f"hash:{path}.new"],
				check=True,
				capture_output=True,
				timeout=60,
				env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
			)
			os.chmod(f"{path}.new.db", 0o644)
			_owned_as_parent(f"{path}.new.db")
			os.replace(f"{path}.new.db", f"{path}.db")
		_owned_as_parent(f"{path}.new")
		os.replace(f"{path}.new", path)
	return postmap is not None


def _owned_as_parent(path: str) -> None:
	"""Files root makes in a site (a command or the tests run as root) stay the bench owner's."""
	if os.geteuid() == 0:
		parent = os.stat(os.path.dirname(path))
		os.chown(path, parent.st_uid, parent.st_gid)
