"""The channel form's SMTP Test Connection against the real test server."""

import pytest

from usedesk_email.mail.errors import AuthenticationError, TLSError
from usedesk_email.mail.smtp_sender import SmtpSettings, check_connection
from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.smtp_server import SmtpTestServer

PASSWORD = "check-Pa55-never-shown"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
	return make_certificates(tmp_path_factory.mktemp("smtp-check-certs"))


@pytest.fixture
def server(certs):
	with SmtpTestServer(certificates=certs, users={"agent": PASSWORD}) as smtp:
		yield smtp


def settings(server, certs, **changes) -> SmtpSettings:
	values = dict(
		host=server.host,
		port=server.port,
		security=server.security,
		username="agent",
		password=PASSWORD,
		ca_file=certs.ca_file,
		timeout=5,
	)
	return SmtpSettings(**{**values, **changes})


def test_check_logs_in_and_sends_nothing(server, certs):
	report = check_connection(settings(server, certs))
	assert "STARTTLS" in report and "logged in as 'agent'" in report
	assert server.deliveries == []


def test_check_reports_a_wrong_password_without_it(server, certs):
	with pytest.raises(AuthenticationError) as caught:
		check_connection(settings(server, certs, password="wrong-" + PASSWORD))
	assert PASSWORD not in str(caught.value)


def test_check_refuses_an_untrusted_certificate(server, certs):
	with pytest.raises(TLSError):
		check_connection(settings(server, certs, ca_file=None))
