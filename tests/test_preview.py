"""The preview command: read-only against the real test Dovecot."""

import re

from usedesk_email.mail.preview import main
from usedesk_email.testing.demo import main as demo


def test_demo_shows_the_tickets_and_changes_nothing(capsys):
	assert demo() == 0
	out = capsys.readouterr().out
	assert "6 messages, 5 unread" in out
	lines = {int(m.group(1)): m.group(2) for m in re.finditer(r"UID\s+(\d+)\s+(.*)", out)}
	assert lines[1].startswith("new ticket T1")
	assert lines[2].startswith("joins T1 (by in-reply-to)")
	assert lines[3].startswith("new ticket T2") and "Вопрос по доставке" in lines[3]
	assert "[auto-reply]" in lines[4]
	assert lines[5].startswith("new ticket T3"), "a stranger with the same subject gets a ticket of their own"
	assert 6 not in lines, "read mail is not imported"
	assert "nothing was marked read" in out


def test_points_at_a_real_mailbox_and_reports_a_wrong_password(mailbox, capsys, monkeypatch):
	server, user, password = mailbox
	monkeypatch.setenv("IMAP_PASSWORD", "not-" + password)
	argv = [
		"--host",
		server.host,
		"--port",
		str(server.ssl_port),
		"--user",
		user,
		"--ca-file",
		str(server.ca_file),
	]
	assert main(argv) == 2
	err = capsys.readouterr().err
	assert "error:" in err and password not in err
	monkeypatch.setenv("IMAP_PASSWORD", password)
	assert main(argv) == 0
	assert "0 messages, 0 unread" in capsys.readouterr().out
