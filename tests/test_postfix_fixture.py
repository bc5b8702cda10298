"""The test Postfix itself, and the documented set-up's text.

A real Postfix with a pipe to a small script: what the MTA does with each exit status of
the command (the app's `deliver` uses the same sysexits codes), that unknown addresses are
refused during the SMTP conversation, and that its size limit refuses at DATA.
"""

import os
import pwd
import re
import shutil
import smtplib
import tempfile
from pathlib import Path

import pytest

from usedesk_email.inbound.postfix_config import (
	PostfixSetup,
	config_block,
	main_cf,
	master_cf,
	mta_size_limit,
	write_recipient_table,
)
from usedesk_email.testing.postfix import PostfixServer
from usedesk_email.testing.smtp_server import SmtpTestServer

README = Path(__file__).resolve().parent.parent / "README.md"
DOMAIN = "inbound.test.example"
EXAMPLE = PostfixSetup(
	bench="/home/frappe/frappe-bench",
	site="helpdesk.example.com",
	domain="inbound.example.com",
	user="frappe",
	max_message_bytes=25 * 1024 * 1024,
)
# Exit status by recipient, as `usedesk-email deliver` answers.
SCRIPT = """#!{python}
import sys, os, uuid
recipient = sys.argv[1]
data = sys.stdin.buffer.read()
codes = {{"in-ok": 0, "in-refused": 65, "in-unknown": 67, "in-later": 75}}
code = codes[recipient.split("@")[0]]
if code == 0:
	with open(os.path.join({out!r}, uuid.uuid4().hex), "wb") as f:
		f.write(data)
else:
	print("deliver: answer " + str(code), file=sys.stderr)
sys.exit(code)
"""


def test_the_readme_shows_the_block_the_tests_use():
	block = config_block(EXAMPLE)
	assert block in README.read_text(), "README's Postfix block must be config_block(EXAMPLE):\n" + block
	assert "bench_helper frappe --site helpdesk.example.com usedesk-email deliver" in block
	assert "user=frappe directory=/home/frappe/frappe-bench/sites" in block
	assert f"message_size_limit = {mta_size_limit(25 * 1024 * 1024)}" in block


@pytest.fixture(scope="module")
def postfix():
	"""A Postfix relaying DOMAIN to a script, bounces going to a test SMTP server."""
	work = Path(tempfile.mkdtemp(prefix="usedesk-pipe-"))
	try:
		user = pipe_user()
		out = work / "out"
		out.mkdir(parents=True)
		os.chmod(work, 0o755)
		os.chown(out, pwd.getpwnam(user).pw_uid, -1)
		script = work / "deliver.py"
		script.write_text(SCRIPT.format(python="/usr/bin/python3", out=str(out)))
		script.chmod(0o755)
		recipients = work / "recipients"
		assert write_recipient_table(
			str(recipients), [f"in-{n}@{DOMAIN}" for n in ("ok", "refused", "unknown", "later")]
		)
		main = (
			f"relay_domains = {DOMAIN}\n"
			f"relay_recipient_maps = hash:{recipients}\n"
			f"transport_maps = inline:{{ {DOMAIN}=script: }}\n"
			"script_destination_recipient_limit = 1\n"
			"message_size_limit = 1048576\n"
		)
		master = (
			"script    unix  -       n       n       -       4       pipe\n"
			f"  flags=Rq user={user} directory={work} null_sender=\n"
			f"  argv={script} ${{recipient}}\n"
		)
		with (
			SmtpTestServer(security="none") as outbound,
			PostfixServer(main, master, outbound=(outbound.host, outbound.port)) as server,
		):
			server.out = out
			server.bounces = outbound
			yield server
	finally:
		shutil.rmtree(work, ignore_errors=True)


def pipe_user() -> str:
	"""Postfix's pipe never runs a command as root: as root the script runs as nobody."""
	return "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name


def send(server, rcpt: str, body: bytes = b"Hello") -> str:
	"""Submit over SMTP; returns the queue id from Postfix's answer to DATA."""
	with smtplib.SMTP(server.host, server.port, timeout=60) as smtp:
		smtp.ehlo("client.example.org")
		smtp.mail("sender@example.org")
		code, reply = smtp.rcpt(rcpt)
		if code != 250:
			raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
		code, reply = smtp.data(b"From: sender@example.org\r\nSubject: test\r\n\r\n" + body + b"\r\n")
		if code != 250:
			raise smtplib.SMTPDataError(code, reply)
	return re.search(rb"queued as (\w+)", reply).group(1).decode()


def test_delivered_through_the_pipe_as_the_given_user(postfix):
	queue_id = send(postfix, f"in-ok@{DOMAIN}")
	postfix.wait_for_log(rf"{queue_id}: to=<in-ok@{DOMAIN}>, relay=script.*status=sent")
	(delivered,) = list(postfix.out.iterdir())
	assert delivered.stat().st_uid == pwd.getpwnam(pipe_user()).pw_uid
	text = delivered.read_bytes()
	assert text.startswith(b"Return-Path: <sender@example.org>\n")
	assert text.rstrip().endswith(b"Hello")


def test_unknown_address_is_refused_at_rcpt_and_nothing_is_queued(postfix):
	with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
		send(postfix, f"in-nobody@{DOMAIN}")
	((code, reply),) = refused.value.recipients.values()
	assert code == 550 and b"5.1.1" in reply
	with pytest.raises(smtplib.SMTPRecipientsRefused) as relay:
		send(postfix, "someone@elsewhere.example")
	assert next(iter(relay.value.recipients.values()))[0] in (450, 454, 554)


def test_exit_codes_become_bounces_and_deferrals(postfix):
	refused = send(postfix, f"in-refused@{DOMAIN}")
	line = postfix.wait_for_log(rf"{refused}: to=<in-refused@{DOMAIN}>.*").group(0)
	assert "dsn=5.6.0" in line and "status=bounced" in line and "deliver: answer 65" in line
	unknown = send(postfix, f"in-unknown@{DOMAIN}")
	assert "dsn=5.1.1" in postfix.wait_for_log(rf"{unknown}: to=<in-unknown@{DOMAIN}>.*").group(0)
	later = send(postfix, f"in-later@{DOMAIN}")
	line = postfix.wait_for_log(rf"{later}: to=<in-later@{DOMAIN}>.*").group(0)
	assert "dsn=4.3.0" in line and "status=deferred" in line
	assert later in postfix.queue()
	postfix.wait_for_log(r"sender non-delivery notification: \w+")
	bounce = postfix.bounces.deliveries
	assert any(b"deliver: answer 65" in d.data for d in bounce)


def test_size_limit_refuses_at_data(postfix):
	with pytest.raises(smtplib.SMTPDataError) as too_big:
		send(postfix, f"in-ok@{DOMAIN}", b"x" * 1_100_000)
	assert too_big.value.smtp_code == 552


def test_rendered_parts_are_the_block():
	block = config_block(EXAMPLE)
	assert master_cf(EXAMPLE) in block and main_cf(EXAMPLE) in block
	assert "relay_recipient_maps = hash:/home/frappe/frappe-bench/sites/helpdesk.example.com/" in block
