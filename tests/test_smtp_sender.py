"""The SMTP sender against a real aiosmtpd server on 127.0.0.1 (STARTTLS, implicit TLS, AUTH)."""

import socket
import traceback
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from usedesk_email.mail.compose import Letter
from usedesk_email.mail.errors import (
	AuthenticationError,
	ConfigError,
	MailConnectionError,
	MailTimeoutError,
	TLSError,
	ssl_port_hint,
)
from usedesk_email.mail.smtp_sender import Outcome, SmtpSettings, check_connection, send
from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.smtp_server import SmtpTestServer

# aiosmtpd warns about AUTH without STARTTLS; implicit TLS and plain AUTH are chosen cases here.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PASSWORD = "s3cret-Pa55-never-shown"
TOKEN = "ya29.token-never-shown"
SENDER = "support@helpdesk.example.com"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
	return make_certificates(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def server(certs):
	with SmtpTestServer(certificates=certs, users={"agent": PASSWORD}) as smtp:
		yield smtp


def settings_for(server: SmtpTestServer, certs, **changes) -> SmtpSettings:
	values = dict(
		host=server.host,
		port=server.port,
		security=server.security,
		username="agent",
		password=PASSWORD,
		ca_file=certs.ca_file,
		timeout=5,
	)
	values.update(changes)
	return SmtpSettings(**values)


def letter(recipient: str, body: str = "Hello.\n", n: int = 0) -> Letter:
	message = EmailMessage(policy=policy.SMTP)
	message["From"] = SENDER
	message["To"] = recipient
	message["Subject"] = "Re: Printer [#42]"
	message["Message-ID"] = f"<letter-{n}@helpdesk.example.com>"
	message.set_content(body)
	return Letter(
		recipient=recipient, sender=SENDER, message_id=f"letter-{n}@helpdesk.example.com", message=message
	)


def letters(*recipients: str) -> list[Letter]:
	return [letter(r, n=i) for i, r in enumerate(recipients)]


def outcomes(results) -> list[tuple[str, Outcome]]:
	return [(r.recipient, r.outcome) for r in results]


def test_each_letter_is_delivered_in_one_starttls_session_with_auth(server, certs):
	batch = letters("client@example.com", "cc1@example.org", "cc2@example.net")
	results = send(settings_for(server, certs), batch)
	assert outcomes(results) == [
		(r, Outcome.SENT) for r in ("client@example.com", "cc1@example.org", "cc2@example.net")
	]
	assert all(r.code == 250 for r in results)
	assert [r.message_id for r in results] == [b.message_id for b in batch]
	assert [(d.mail_from, d.rcpt_tos) for d in server.deliveries] == [
		(SENDER, ["client@example.com"]),
		(SENDER, ["cc1@example.org"]),
		(SENDER, ["cc2@example.net"]),
	]
	assert [d.data for d in server.deliveries] == [b.raw for b in batch]


def test_a_letter_rebuilt_from_stored_bytes_is_sent_byte_for_byte(server, certs):
	original = letter("client@example.com", "Stored.\n.\n")
	stored = Letter.from_raw(original.recipient, original.sender, original.message_id, original.raw, bcc=True)
	(result,) = send(settings_for(server, certs), [stored])
	assert (result.outcome, result.bcc, result.message_id) == (Outcome.SENT, True, original.message_id)
	assert server.deliveries[0].data == original.raw


def test_lines_with_dots_arrive_intact(server, certs):
	body = "First line\n.\n..\n.hidden\nLast line\n"
	sent = letter("client@example.com", body)
	send(settings_for(server, certs), [sent])
	(delivery,) = server.deliveries
	assert delivery.data == sent.raw
	received = BytesParser(policy=policy.default).parsebytes(delivery.data)
	assert received.get_content().replace("\r\n", "\n") == body


def test_one_refused_recipient_does_not_stop_the_others(server, certs):
	server.refuse["nobody@example.org"] = "550 5.1.1 <nobody@example.org>: no such user"
	results = send(
		settings_for(server, certs), letters("client@example.com", "nobody@example.org", "cc@example.net")
	)
	assert outcomes(results) == [
		("client@example.com", Outcome.SENT),
		("nobody@example.org", Outcome.PERMANENT),
		("cc@example.net", Outcome.SENT),
	]
	assert results[1].code == 550 and "no such user" in results[1].detail
	assert [d.rcpt_tos for d in server.deliveries] == [["client@example.com"], ["cc@example.net"]]


def test_4xx_is_temporary_and_the_session_goes_on(server, certs):
	server.refuse["busy@example.org"] = "451 4.7.1 greylisted, try again later"
	results = send(settings_for(server, certs), letters("busy@example.org", "client@example.com"))
	assert outcomes(results) == [
		("busy@example.org", Outcome.TEMPORARY),
		("client@example.com", Outcome.SENT),
	]
	assert results[0].code == 451
	assert [d.rcpt_tos for d in server.deliveries] == [["client@example.com"]]


def test_connection_dropped_after_data_is_uncertain_and_the_rest_not_tried(server, certs):
	server.drop_after_data.add("cc@example.org")
	results = send(
		settings_for(server, certs), letters("client@example.com", "cc@example.org", "cc@example.net")
	)
	assert outcomes(results) == [
		("client@example.com", Outcome.SENT),
		("cc@example.org", Outcome.UNCERTAIN),
		("cc@example.net", Outcome.TEMPORARY),
	]
	assert "may have been delivered" in results[1].detail
	assert "not tried" in results[2].detail
	assert [d.rcpt_tos for d in server.deliveries] == [["client@example.com"]]


def test_no_answer_after_data_is_uncertain(server, certs):
	server.hang_after_data.add("client@example.com")
	(result,) = send(settings_for(server, certs, timeout=1), letters("client@example.com"))
	assert result.outcome == Outcome.UNCERTAIN and result.code is None


def test_authentication_failure_never_shows_the_password(server, certs):
	wrong = "Wr0ng-" + PASSWORD
	with pytest.raises(AuthenticationError) as caught:
		send(settings_for(server, certs, password=wrong), letters("client@example.com"))
	assert "535" in str(caught.value) and "agent" in str(caught.value)
	shown = "".join(traceback.format_exception(caught.value))
	assert wrong not in shown and PASSWORD not in shown
	assert server.deliveries == []


def test_starttls_not_offered_fails_closed(certs):
	with SmtpTestServer(security="none", users={"agent": PASSWORD}) as plain:
		with pytest.raises(TLSError, match="does not offer STARTTLS"):
			send(settings_for(plain, certs, security="starttls"), letters("client@example.com"))
		assert plain.deliveries == []


def test_certificate_of_an_unknown_ca_is_refused_naming_the_field_for_a_private_ca(server, certs):
	with pytest.raises(TLSError, match=r"not trusted .*into Trusted CA Certificate \(PEM\)") as caught:
		send(settings_for(server, certs, ca_file=None), letters("client@example.com"))
	assert PASSWORD not in str(caught.value)
	assert server.deliveries == []


def test_certificate_for_another_host_is_refused(tmp_path):
	other = make_certificates(tmp_path, hosts=("mail.other.invalid",))
	with SmtpTestServer(certificates=other, users={"agent": PASSWORD}) as smtp:
		with pytest.raises(TLSError, match="certificate is for another host name"):
			send(settings_for(smtp, other), letters("client@example.com"))
		assert smtp.deliveries == []


def test_ssl_on_a_starttls_port_says_to_choose_starttls(server, certs):
	with pytest.raises(TLSError, match=f"expects STARTTLS on port {server.port}, not SSL"):
		send(settings_for(server, certs, security="ssl"), letters("client@example.com"))
	assert server.deliveries == []


def test_a_silent_ssl_port_suggests_ssl():
	assert (
		ssl_port_hint("SMTP", "starttls", 465) == "; port 465 usually expects SSL from the start: choose SSL"
	)
	assert ssl_port_hint("IMAP", "none", 993).startswith("; port 993")
	assert ssl_port_hint("SMTP", "ssl", 465) == ssl_port_hint("SMTP", "starttls", 587) == ""


def test_implicit_tls(certs):
	with SmtpTestServer(security="ssl", certificates=certs, users={"agent": PASSWORD}) as smtp:
		results = send(settings_for(smtp, certs, security="SSL"), letters("client@example.com"))
		assert outcomes(results) == [("client@example.com", Outcome.SENT)]
		assert len(smtp.deliveries) == 1


def test_plain_without_auth():
	with SmtpTestServer(security="none") as smtp:
		settings = SmtpSettings(host=smtp.host, port=smtp.port, security="none", timeout=5)
		results = send(settings, letters("client@example.com", "cc@example.org"))
		assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]


def test_xoauth2(certs):
	with SmtpTestServer(certificates=certs, tokens={"agent@example.com": TOKEN}) as smtp:
		good = settings_for(smtp, certs, username="agent@example.com", password="", oauth2_token=TOKEN)
		assert [r.outcome for r in send(good, letters("client@example.com"))] == [Outcome.SENT]
		bad = settings_for(smtp, certs, username="agent@example.com", password="", oauth2_token=TOKEN + "x")
		with pytest.raises(AuthenticationError) as caught:
			send(bad, letters("client@example.com"))
		assert TOKEN not in "".join(traceback.format_exception(caught.value))
		assert len(smtp.deliveries) == 1


def test_no_letters_no_session():
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		port = probe.getsockname()[1]
	assert send(SmtpSettings(host="127.0.0.1", port=port, security="none"), []) == []


def test_nothing_listening_is_a_connection_error():
	with socket.socket() as probe:
		probe.bind(("127.0.0.1", 0))
		port = probe.getsockname()[1]
	with pytest.raises(MailConnectionError, match=f"127.0.0.1:{port}"):
		send(SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=2), letters("a@example.com"))


def test_server_that_never_greets_times_out():
	with socket.socket() as silent:
		silent.bind(("127.0.0.1", 0))
		silent.listen(1)
		settings = SmtpSettings(host="127.0.0.1", port=silent.getsockname()[1], security="none", timeout=1)
		with pytest.raises(MailTimeoutError, match="did not answer within 1 s"):
			send(settings, letters("a@example.com"))


@pytest.mark.parametrize(
	"changes, message",
	[
		({"host": " "}, "host is empty"),
		({"port": 0}, "not a port number"),
		({"port": "587"}, "not a port number"),
		({"security": "tls"}, "not one of ssl, starttls, none"),
		({"ca_file": "/nonexistent/ca.pem"}, "does not exist"),
		({"timeout": 0}, "timeout must be positive"),
		({"username": ""}, "need a username"),
	],
)
def test_settings_that_cannot_work(changes, message):
	values = dict(host="smtp.example.com", port=587, security="starttls", username="agent", password=PASSWORD)
	values.update(changes)
	with pytest.raises(ConfigError, match=message):
		SmtpSettings(**values)


def test_settings_repr_hides_secrets():
	settings = SmtpSettings("smtp.example.com", 587, "starttls", "agent", PASSWORD, TOKEN)
	assert PASSWORD not in repr(settings) and TOKEN not in repr(settings)


def test_check_connection_logs_in_and_sends_nothing(server, certs):
	report = check_connection(settings_for(server, certs))
	assert "STARTTLS" in report and "logged in as 'agent'" in report
	assert server.deliveries == []


def test_check_connection_reports_a_wrong_password_without_it(server, certs):
	with pytest.raises(AuthenticationError) as caught:
		check_connection(settings_for(server, certs, password="wrong-" + PASSWORD))
	assert PASSWORD not in str(caught.value)


def test_check_connection_refuses_an_untrusted_certificate(server, certs):
	with pytest.raises(TLSError):
		check_connection(settings_for(server, certs, ca_file=None))
