"""A reply goes all the way: composed, sent over SMTP (STARTTLS + AUTH), delivered into real
Dovecot mailboxes, fetched over IMAP, parsed by the inbound engine - and threads back to its
ticket both by its headers and by the token in its subject."""

from datetime import datetime, timezone

import pytest

from usedesk_email.mail.compose import QuotedMessage, ReplyDraft, compose_reply
from usedesk_email.mail.imap_session import FetchedMessage, ImapSettings, drain
from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.smtp_sender import Outcome, SmtpSettings, send
from usedesk_email.mail.thread_keys import find_token
from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.dovecot import DovecotServer, Mailbox
from usedesk_email.testing.smtp_server import Delivery, SmtpTestServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

TOKEN = "[#4711]"
SMTP_PASSWORD = "agent-smtp-password"
# What the ticket has stored: the client's first mail and our earlier reply.
CLIENT_FIRST = "CAF=first+mail@mail.gmail.example"
OUR_EARLIER = "17000.1.2@helpdesk.example.com"
CLIENT_LATEST = "CAF=second+mail@mail.gmail.example"
TICKET_IDS = {CLIENT_FIRST, OUR_EARLIER, CLIENT_LATEST}


def fetch_all(mailbox: Mailbox) -> list[ParsedMessage]:
	server = mailbox.server
	settings = ImapSettings(
		host=server.host,
		port=server.plain_port,
		security="starttls",
		username=mailbox.user,
		password=mailbox.password,
		ca_file=str(server.ca_file),
		connect_timeout=5.0,
		read_timeout=5.0,
	)
	fetched: list[FetchedMessage] = []
	drain(settings, lambda message: fetched.append(message) or True)
	return [parse_message(message.raw) for message in fetched]


@pytest.fixture
def smtp_into_dovecot(dovecot: DovecotServer, tmp_path):
	"""An SMTP server whose accepted letters land in the Dovecot mailbox of each recipient."""
	routes: dict[str, str] = {}

	def deliver(delivery: Delivery) -> None:
		for rcpt in delivery.rcpt_tos:
			dovecot.deliver(routes[rcpt.lower()], delivery.data)

	certs = make_certificates(tmp_path / "smtp-certs")
	with SmtpTestServer(certificates=certs, users={"agent": SMTP_PASSWORD}, on_deliver=deliver) as smtp:
		settings = SmtpSettings(
			host=smtp.host,
			port=smtp.port,
			security="starttls",
			username="agent",
			password=SMTP_PASSWORD,
			ca_file=certs.ca_file,
			timeout=10,
		)
		yield routes, settings


def test_reply_round_trip_threads_to_the_ticket(dovecot, smtp_into_dovecot):
	routes, settings = smtp_into_dovecot
	client, cc, archive = (dovecot.new_mailbox(name) for name in ("client", "cc", "archive"))
	addresses = {box.user: f"{box.user}@example.com" for box in (client, cc, archive)}
	routes.update({addresses[box.user]: box.user for box in (client, cc, archive)})

	reply = compose_reply(
		ReplyDraft(
			subject="Re: Принтер горит",
			token=TOKEN,
			from_address=Address("support@helpdesk.example.com", "Служба поддержки"),
			recipients=[
				Address(addresses[client.user], "Клиент"),
				Address(addresses[cc.user], "Colleague"),
				Address("support@helpdesk.example.com"),
			],
			message_id_domain="helpdesk.example.com",
			text="Здравствуйте!\n.\nМы уже едем.",
			personal_signature="<p>Anna, support</p>",
			display_quote=True,
			history=[
				QuotedMessage(
					Address(addresses[client.user], "Клиент"),
					datetime(2025, 6, 2, 9, 30, tzinfo=timezone.utc),
					text="It is still burning.",
				)
			],
			bcc=addresses[archive.user],
			own_addresses=["support@helpdesk.example.com"],
			in_reply_to=CLIENT_LATEST,
			references=[CLIENT_FIRST, OUR_EARLIER],
		)
	)
	results = send(settings, reply.letters)
	assert [(r.recipient, r.outcome) for r in results] == [
		(addresses[client.user], Outcome.SENT),
		(addresses[cc.user], Outcome.SENT),
		(addresses[archive.user], Outcome.SENT),
	]

	for box, letter in zip((client, cc, archive), reply.letters, strict=True):
		(received,) = fetch_all(box)
		assert received.message_id == letter.message_id
		assert received.sender == Address("support@helpdesk.example.com", "Служба поддержки")
		# by headers: the parent and the whole stored chain
		assert received.in_reply_to == [CLIENT_LATEST]
		assert received.references == [CLIENT_FIRST, OUR_EARLIER, CLIENT_LATEST]
		assert set(received.thread_ids) == TICKET_IDS
		# by token
		assert find_token(received.subject) == TOKEN
		assert received.subject.count(TOKEN) == 1 and "Принтер горит" in received.subject
		assert "Здравствуйте!\n.\nМы уже едем." in received.text.replace("\r\n", "\n")
		assert received.text.count("Anna, support") == 1
		assert "It is still burning." in received.text
		assert [a.email for a in received.to] == [
			addresses[client.user] if box is archive else addresses[box.user]
		]
		assert received.cc == []
		assert received.kind == Kind.NORMAL and received.date_trusted


def test_automatic_letter_is_recognised_as_one_by_the_inbound_engine(dovecot, smtp_into_dovecot):
	routes, settings = smtp_into_dovecot
	client = dovecot.new_mailbox("client")
	routes[f"{client.user}@example.com"] = client.user
	reply = compose_reply(
		ReplyDraft(
			subject="Printer",
			token=TOKEN,
			from_address=Address("support@helpdesk.example.com"),
			recipients=[Address(f"{client.user}@example.com")],
			message_id_domain="helpdesk.example.com",
			text="We got your message.",
			in_reply_to=CLIENT_FIRST,
			auto_submitted=True,
		)
	)
	assert [r.outcome for r in send(settings, reply.letters)] == [Outcome.SENT]
	(received,) = fetch_all(client)
	assert received.kind == Kind.AUTO_REPLY
	assert received.in_reply_to == [CLIENT_FIRST] and find_token(received.subject) == TOKEN
