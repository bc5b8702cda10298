"""Shared fixtures: one real Dovecot for the whole run, a fresh mailbox for each test."""

from collections.abc import Iterator

import pytest

from usedesk_email.testing.dovecot import DovecotServer, Mailbox


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
	"""A real Dovecot on 127.0.0.1 (STARTTLS, SSL and no-STARTTLS listeners), stopped at the end."""
	with DovecotServer() as server:
		yield server


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> Mailbox:
	"""A new user with an empty INBOX: (server, user, password)."""
	return dovecot.new_mailbox()
