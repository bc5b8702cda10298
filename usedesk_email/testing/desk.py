"""Builders shared by the app's Frappe tests (real site, real servers; nothing faked)."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager

import frappe

from usedesk_email.testing.oauth2_server import OAuth2TestServer
from usedesk_email.testing.ports import HOST, free_port
from usedesk_email.testing.smtp_server import SmtpTestServer
from usedesk_email.usedesk_email.doctype.email_channel_message.email_channel_message import (
	dedupe_key,
	message_key,
)

SECRET = "s3cret-" + "f" * 40  # the Internal channels' endpoint secret in the tests


def desk_user(email: str, role: str | None) -> "frappe.model.document.Document":
	"""A desk user (no welcome e-mail), with `role` when one is given."""
	if not frappe.db.exists("User", email):
		frappe.get_doc(
			{"doctype": "User", "email": email, "first_name": email.split("@")[0], "send_welcome_email": 0}
		).insert(ignore_permissions=True)
	user = frappe.get_doc("User", email)
	if role and role not in [r.role for r in user.roles]:
		user.add_roles(role)
	return user


def make_channel(channel_name: str, **values):
	"""An External channel with a complete, valid configuration, changed by `values`."""
	if frappe.db.exists("Email Channel", channel_name):
		frappe.delete_doc("Email Channel", channel_name, force=True)
	doc = frappe.get_doc(
		{
			"doctype": "Email Channel",
			"channel_name": channel_name,
			"incoming_type": "External",
			"outgoing_type": "Internal",
			"imap_username": "agent@example.com",
			"imap_password": "imap-pass",
			"imap_host": "127.0.0.1",
			"imap_port": 993,
			"imap_encryption": "SSL",
			"from_email": "help@example.com",
			**values,
		}
	)
	return doc.insert(ignore_permissions=True)


def mail(
	subject: str,
	sender: str = "client@example.org",
	message_id: str | None = None,
	in_reply_to: str | None = None,
	to: str = "help@example.com",
	cc: str | None = None,
	body: str = "Hello, I need help.",
	headers: dict | None = None,
	date: str = "Thu, 26 Nov 2026 10:00:00 +0000",
) -> bytes:
	"""A small raw RFC 822 message; tests that need odd mail use the engine's .eml corpus."""
	lines = [
		f"From: Client <{sender}>",
		f"To: {to}",
		f"Subject: {subject}",
		f"Date: {date}",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
	]
	if message_id:
		lines.append(f"Message-ID: <{message_id}>")
	if in_reply_to:
		lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
	if cc:
		lines.append(f"Cc: {cc}")
	lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
	return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def dovecot_channel(server, mailbox, channel_name: str, **values):
	"""An External channel that polls a real Dovecot test mailbox over SSL with the test CA."""
	settings = {
		"imap_username": mailbox.user,
		"imap_password": mailbox.password,
		"imap_host": server.host,
		"imap_port": server.ssl_port,
		"imap_encryption": "SSL",
		"ca_certificate": server.ca_file.read_text(),
	}
	return make_channel(channel_name, **{**settings, **values})


def messages_of(channel: str) -> list[dict]:
	return frappe.get_all(
		"Communication",
		filters={"reference_doctype": "Ticket", "reference_name": ("in", tickets_of(channel))},
		fields=["name", "message_id", "reference_name", "sent_or_received", "subject"],
	)


def tickets_of(channel: str) -> list[str]:
	return frappe.get_all("Ticket", filters={"channel": channel}, pluck="name") or ["-"]


def remove_channel_rows(channel: str) -> None:
	"""A test channel goes with its committed tickets, messages, files and search entries
	(ingestion commits)."""
	frappe.db.rollback()
	tickets = frappe.get_all("Ticket", {"channel": channel}, pluck="name")
	comms = frappe.get_all(
		"Communication",
		{"reference_doctype": "Ticket", "reference_name": ("in", tickets or ["-"])},
		pluck="name",
	)
	for file in frappe.get_all(
		"File", {"attached_to_doctype": "Communication", "attached_to_name": ("in", comms)}, pluck="name"
	):
		frappe.delete_doc("File", file, force=True, ignore_permissions=True)
	if comms:
		frappe.db.delete("Communication Link", {"parent": ("in", comms)})
		frappe.db.delete("Communication", {"name": ("in", comms)})
	if tickets:
		frappe.db.delete("__global_search", {"doctype": "Ticket", "name": ("in", [str(t) for t in tickets])})
	frappe.db.delete("Ticket", {"channel": channel})
	frappe.db.delete("Email Channel Message", {"channel": channel})
	frappe.delete_doc("Email Channel", channel, force=True, ignore_permissions=True)
	frappe.db.commit()


def record_outgoing(channel: str, message_id: str, ticket: str) -> None:
	"""What sending a letter leaves in the ledger, so replies to it can thread."""
	frappe.get_doc(
		{
			"doctype": "Email Channel Message",
			"channel": channel,
			"dedupe_key": dedupe_key(message_id),
			"message_key": message_key(message_id),
			"message_id": message_id,
			"direction": "Outgoing",
			"ticket": ticket,
		}
	).insert(ignore_permissions=True)


@contextmanager
def served_site() -> Iterator[str]:
	"""This site behind Frappe's own WSGI application in a child process, on 127.0.0.1 only.

	Requests go through the whole stack a production server runs (request parsing, auth,
	rate limiting, exception handling, response building); the base URL is yielded.
	"""
	port = free_port()
	code = textwrap.dedent(
		f"""
		import logging
		import frappe.app
		from werkzeug.serving import run_simple
		frappe.app._site = {frappe.local.site!r}
		frappe.app._sites_path = {frappe.local.sites_path!r}
		logging.getLogger("werkzeug").setLevel(logging.ERROR)
		run_simple({HOST!r}, {port}, frappe.app.application_with_statics(), threaded=True)
		"""
	)
	child = subprocess.Popen(
		[sys.executable, "-c", code],
		cwd=frappe.local.sites_path,
		stdout=subprocess.DEVNULL,
		stderr=subprocess.PIPE,
	)
	try:
		wait_for_port(port, child)
		yield f"http://{HOST}:{port}"
	finally:
		child.terminate()
		child.wait(timeout=30)
		child.stderr.close()


def wait_for_port(port: int, child: subprocess.Popen, timeout: float = 60) -> None:
	deadline = time.monotonic() + timeout
	while time.monotonic() < deadline:
		if child.poll() is not None:
			raise RuntimeError(f"the site server exited: {child.stderr.read().decode(errors='replace')}")
		try:
			socket.create_connection((HOST, port), timeout=1).close()
			return
		except OSError:
			time.sleep(0.2)
	raise TimeoutError(f"the site server did not listen on {HOST}:{port}")


def run_bench(args: list[str], stdin: bytes = b"", site: str | None = None) -> subprocess.CompletedProcess:
	"""A bench command as an MTA runs it: a separate process, the message on standard input."""
	bench = shutil.which("bench") or os.path.join(os.path.dirname(sys.executable), "bench")
	result = subprocess.run(
		[bench, "--site", site or frappe.local.site, *args],
		input=stdin,
		capture_output=True,
		cwd=os.path.dirname(os.path.abspath(frappe.local.sites_path)),
		timeout=300,
	)
	frappe.db.commit()  # a fresh snapshot: the child wrote from another process
	return result


def user_with_role(email: str, role: str | None) -> tuple[str, str]:
	"""A desk user with one of the app's roles and REST API keys; returns (key, secret)."""
	user = desk_user(email, role)
	secret = frappe.generate_hash(length=15)
	user.api_key = user.api_key or frappe.generate_hash(length=15)
	user.api_secret = secret
	user.save(ignore_permissions=True)
	return user.api_key, secret


def set_settings(**values):
	settings = frappe.get_single("Email Channel Settings")
	settings.update(values)
	settings.save(ignore_permissions=True)
	frappe.db.commit()


def agent_user(email: str, signature: str, role: str | None = "Support Agent") -> str:
	desk_user(email, role).db_set("email_signature", signature)
	frappe.db.commit()
	return email


def outgoing_account(server: SmtpTestServer) -> str:
	doc = frappe.get_doc(
		{
			"doctype": "Email Account",
			"email_account_name": "usedesk outgoing test",
			"email_id": "outgoing@usedesk.test",
			"enable_outgoing": 1,
			"default_outgoing": 1,
			"smtp_server": server.host,
			"smtp_port": server.port,
			"use_tls": 0,
			"use_ssl_for_outgoing": 0,
			"no_smtp_authentication": 1,
			"awaiting_password": 0,
		}
	)
	doc.flags.ignore_validate = True
	doc.insert(ignore_permissions=True)
	frappe.db.commit()
	return doc.name


def start_site_script(code: str) -> subprocess.Popen:
	"""Run code in a fresh process connected to this site: a real second worker."""
	bootstrap = textwrap.dedent(
		f"""
		import frappe
		frappe.init(site={frappe.local.site!r}, sites_path={frappe.local.sites_path!r})
		frappe.connect()
		"""
	)
	return subprocess.Popen(
		[sys.executable, "-c", bootstrap + textwrap.dedent(code)],
		cwd=frappe.local.sites_path,
		stdout=subprocess.PIPE,
		stderr=subprocess.PIPE,
		text=True,
	)


def run_site_script(code: str) -> subprocess.CompletedProcess:
	child = start_site_script(code)
	out, err = child.communicate(timeout=180)
	return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def connected_app(provider: OAuth2TestServer) -> str:
	name = frappe.db.get_value("Connected App", {"provider_name": "usedesk test provider"})
	if name:
		frappe.delete_doc("Connected App", name, force=True)
	app = frappe.get_doc(
		{
			"doctype": "Connected App",
			"provider_name": "usedesk test provider",
			"client_id": provider.client_id,
			"client_secret": provider.client_secret,
			"authorization_uri": provider.base_url + "/authorize",
			"token_uri": provider.token_url,
			"scopes": [{"scope": "offline_access"}],
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return app.name


def token_cache(app: str):
	return frappe.get_doc("Connected App", app).get_token_cache("Administrator")


def authorise(app: str, access: str, refresh: str, expires_in: int) -> None:
	"""What Microsoft's sign-in leaves behind: Frappe's Token Cache for the admin."""
	cache = token_cache(app)
	if not cache:
		cache = frappe.new_doc("Token Cache")
		cache.user = "Administrator"
		cache.connected_app = app
	cache.update_data(
		{"access_token": access, "refresh_token": refresh, "expires_in": expires_in, "token_type": "Bearer"}
	)
