"""The test Dovecot itself: listeners, TLS, delivery, flags, UIDVALIDITY reset and clean stop.

Other tests rely on these facts (e.g. that the n-th delivered message gets UID n), so they
are checked here against the server with plain imapclient, not through the engine.
"""

import os
import pwd
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
from imapclient import IMAPClient

from usedesk_email.testing.dovecot import DovecotError, DovecotServer, group_members
from usedesk_email.testing.tcp_proxy import TcpProxy


def greeting(host: str, port: int) -> bytes:
	with socket.create_connection((host, port), timeout=5) as sock:
		return sock.recv(512)


def login(mailbox) -> IMAPClient:
	client = IMAPClient(mailbox.server.host, mailbox.server.plain_port, ssl=False, timeout=10)
	client.login(mailbox.user, mailbox.password)
	return client


def live_processes(group: int) -> str:
	"""pgrep's list of the group's processes that are not zombies (init reaps those)."""
	return subprocess.run(
		["pgrep", "-g", str(group), "-r", "R,S,D,T,t,I"], capture_output=True, text=True
	).stdout.strip()


def test_listeners_offer_starttls_only_where_they_should(dovecot):
	assert b"STARTTLS" in greeting(dovecot.host, dovecot.plain_port)
	assert b"STARTTLS" not in greeting(dovecot.host, dovecot.no_tls_port)
	assert dovecot.host == "127.0.0.1"
	assert len({dovecot.plain_port, dovecot.ssl_port, dovecot.no_tls_port}) == 3


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_ssl_listener_certificate_verifies_against_the_ca_for_ip_and_name(dovecot, name):
	context = ssl.create_default_context(cafile=str(dovecot.ca_file))
	with socket.create_connection((dovecot.host, dovecot.ssl_port), timeout=5) as sock:
		with context.wrap_socket(sock, server_hostname=name) as tls:
			assert tls.recv(512).startswith(b"* OK")

	with socket.create_connection((dovecot.host, dovecot.ssl_port), timeout=5) as sock:
		with pytest.raises(ssl.SSLCertVerificationError):
			ssl.create_default_context().wrap_socket(sock, server_hostname=name)


def test_delivered_messages_get_uids_in_delivery_order_and_their_flags(mailbox):
	server, user, _password = mailbox
	for n in range(1, 31):
		server.deliver(
			user, f"Message-ID: <{n}@fixture>\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode(), seen=n % 4 == 0
		)

	flags = server.flags(user)
	with login(mailbox) as client:
		client.select_folder("INBOX", readonly=True)
		ids = client.fetch("1:*", ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])

	assert sorted(flags) == list(range(1, 31))
	assert {uid for uid, f in flags.items() if "\\Seen" in f} == {4, 8, 12, 16, 20, 24, 28}
	for uid, data in ids.items():
		assert f"<{uid}@fixture>".encode() in data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]


def test_reset_uidvalidity_keeps_messages_and_flags(mailbox):
	server, user, _password = mailbox
	server.deliver(user, b"Subject: one\r\n\r\n1\r\n")
	server.deliver(user, b"Subject: two\r\n\r\n2\r\n", seen=True)
	before, flags = server.uidvalidity(user), server.flags(user)

	server.reset_uidvalidity(user)

	assert server.uidvalidity(user) != before
	assert server.flags(user) == flags == {1: set(), 2: {"\\Seen"}}


def test_clear_empties_the_inbox(mailbox):
	server, user, _password = mailbox
	server.deliver(user, b"Subject: one\r\n\r\n1\r\n")
	server.flags(user)  # Dovecot has indexed it

	server.clear(user)

	assert server.flags(user) == {}


def test_users_added_while_running_can_log_in_at_once(dovecot):
	for _ in range(3):
		mailbox = dovecot.new_mailbox()
		with login(mailbox) as client:
			assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_bad_user_names_and_passwords_are_refused(dovecot):
	with pytest.raises(DovecotError):
		dovecot.add_user("../evil", "pw")
	with pytest.raises(DovecotError):
		dovecot.add_user("fine", "pass:word")


def test_stop_leaves_no_process_and_keeps_a_given_root():
	with tempfile.TemporaryDirectory(prefix="udc-test-") as directory:
		root = Path(directory)
		root.chmod(0o755)
		with DovecotServer(root, users={"alice": "pw1"}) as server:
			server.deliver("alice", b"Subject: hi\r\n\r\nhi\r\n")
			assert server.flags("alice") == {1: set()}
			groups = server.process_groups
			ports = [server.plain_port, server.ssl_port, server.no_tls_port]
			assert len(groups) == 2 and all(live_processes(group) for group in groups)

		assert [live_processes(group) for group in groups] == ["", ""]
		for port in ports:
			with pytest.raises(ConnectionRefusedError):
				socket.create_connection(("127.0.0.1", port), timeout=2)
		assert (root / "mail" / "alice" / "Maildir").is_dir()


def test_own_root_is_removed_on_stop():
	server = DovecotServer().start()
	root = server.root
	server.stop()
	assert not root.exists()


def test_a_private_root_is_refused_under_root_and_fine_for_an_ordinary_user():
	"""Under root the mail processes run as 'nobody', who must reach the mail; an ordinary
	user's Dovecot runs wholly as that user, so its own private directory is fine."""
	with tempfile.TemporaryDirectory(prefix="udc-") as directory:
		hidden = Path(directory) / "hidden"
		hidden.mkdir(mode=0o700)
		server = DovecotServer(hidden / "dovecot", users={"alice": "pw1"})
		if os.geteuid() == 0:
			with pytest.raises(DovecotError, match="not traversable"):
				server.start()
		else:
			with server:
				server.deliver("alice", b"Subject: hi\r\n\r\nhi\r\n")
				assert server.flags("alice") == {1: set()}


def test_sessions_run_as_nobody_under_root_and_as_the_user_otherwise(mailbox):
	expected = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
	marker = f"/imap [{mailbox.user} ".encode()
	with login(mailbox) as client:
		client.select_folder("INBOX")
		processes = process_owners(mailbox.server.process_groups)
		sessions = {uid for cmdline, uid in processes if marker in cmdline}
		assert sessions == {expected}
	if os.geteuid() != 0:
		assert processes and {uid for _cmdline, uid in processes} == {os.geteuid()}


def process_owners(groups: list[int]) -> list[tuple[bytes, int]]:
	"""(command line, owner uid) of the groups' live processes; one that ends meanwhile is left out."""
	owners = []
	for group in groups:
		for pid in group_members(group):
			try:
				owners.append((Path(f"/proc/{pid}/cmdline").read_bytes(), Path(f"/proc/{pid}").stat().st_uid))
			except OSError:
				continue
	return owners


def test_proxy_forwards_and_cuts_after_the_given_bytes(dovecot):
	with TcpProxy(dovecot.host, dovecot.plain_port) as proxy:
		with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
			assert sock.recv(512).startswith(b"* OK")
			proxy.cut_after(10)
			sock.sendall(b"a1 CAPABILITY\r\n")
			received = b""
			while chunk := sock.recv(512):
				received += chunk
	assert len(received) == 10
	assert proxy.cuts == 1
	assert proxy.client_data == b"a1 CAPABILITY\r\n"
