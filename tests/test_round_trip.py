"""A reply goes all the way: composed, sent over SMTP (STARTTLS + AUTH), delivered into real
Dovecot mailboxes, fetched over IMAP, parsed by the inbound engine - and threads back to its
ticket both by its headers and by the token in its subject."""

import dataclasses
from datetime import datetime, timezone

import pytest

from usedesk_email.mail.compose import QuotedMessage, ReplyDraft, compose_reply
from usedesk_email.mail.drain import drain
from usedesk_email.mail.imap_session import FetchedMessage, ImapSettings
from usedesk_email.mail.message import Address, Kind, ParsedMessage
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.smtp_sender import Outcome, SmtpSettings, send
from usedesk_email.mail.thread_keys import ThreadDecision, ThreadIndex, find_token, ticket_token
from usedesk_email.testing.certificates import make_certificates
from usedesk_email.testing.dovecot import DovecotServer, Mailbox
from usedesk_email.testing.smtp_server import Delivery, SmtpTestServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

TICKET = "4711"
TOKEN = ticket_token(TICKET)
SMTP_PASSWORD = "agent-smtp-password"
# What the ticket has stored: the client's first mail and our earlier reply.
CLIENT_FIRST = "CAF=first+mail@mail.gmail.example"
OUR_EARLIER = "17000.1.2@helpdesk.example.com"
CLIENT_LATEST = "CAF=second+mail@mail.gmail.example"
TICKET_IDS = {CLIENT_FIRST, OUR_EARLIER, CLIENT_LATEST}


def stored_ticket(client_email: str) -> tuple[ThreadIndex, int]:
	"""The ticket as the site has it: the client's two mails and our reply in between."""
	index = ThreadIndex()

	def mail(message_id: str, sender: str, to: str, subject: str, parent: str = "") -> ParsedMessage:
		threading = f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
		return parse_message(
			f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
			f"Date: Mon, 02 Jun 2025 09:00:00 +0000\r\n{threading}\r\nHello\r\n".encode()
		)

	support = "support@helpdesk.example.com"
	key = index.add(mail(CLIENT_FIRST, client_email, support, "Printer"), token_of_new=TICKET).ticket_key
	index.add(mail(OUR_EARLIER, support, client_email, f"Re: Printer {TOKEN}", CLIENT_FIRST))
	index.add(mail(CLIENT_LATEST, client_email, support, f"Re: Printer {TOKEN}", OUR_EARLIER))
	return index, key


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

	index, ticket = stored_ticket(addresses[client.user])
	for box, letter in zip((client, cc, archive), reply.letters, strict=True):
		(received,) = fetch_all(box)
		assert received.message_id == letter.message_id
		assert received.sender == Address("support@helpdesk.example.com", "Служба поддержки")
		# by headers: the parent and the whole stored chain
		assert received.in_reply_to == [CLIENT_LATEST]
		assert received.references == [CLIENT_FIRST, OUR_EARLIER, CLIENT_LATEST]
		assert set(received.thread_ids) == TICKET_IDS
		assert index.add(received) == ThreadDecision(ticket, "in-reply-to")
		# by token alone, as when a client's mailer drops the threading headers
		bare = dataclasses.replace(
			received, message_id=f"bare-{received.message_id}", in_reply_to=[], references=[]
		)
		assert find_token(received.subject) == TICKET
		assert index.add(bare) == ThreadDecision(ticket, "token")
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
	assert received.in_reply_to == [CLIENT_FIRST] and find_token(received.subject) == TICKET
