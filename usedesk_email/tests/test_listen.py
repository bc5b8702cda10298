# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The real-time listener for real: `bench usedesk-email listen` and `bench worker` processes,
a real Dovecot in IDLE, mail delivered through it. No scheduler runs here, so every ticket
below was polled because the listener heard of its mail."""

import os
import time
from pathlib import Path

import frappe
from frappe.tests.utils import FrappeTestCase

from usedesk_email.db import database_now
from usedesk_email.inbound.listen import TOKEN_AHEAD
from usedesk_email.inbound.poll import poll_channel
from usedesk_email.testing import background
from usedesk_email.testing.desk import (
	authorise,
	connected_app,
	dovecot_channel,
	mail,
	make_channel,
	messages_of,
	token_cache,
)
from usedesk_email.testing.dovecot import DovecotServer
from usedesk_email.testing.oauth2_server import OAuth2TestServer

TAKEOVER = 60  # seconds: the issue's bound for another listener to take a dead one's channels
SETTLE = 45  # seconds for a listener to take a channel and log in (a round is 5 s)


def disable_channels() -> None:
	frappe.db.rollback()
	frappe.db.set_value("Email Channel", {"enabled": 1}, "enabled", 0, update_modified=False)
	frappe.db.commit()


class ListenerTestCase(FrappeTestCase):
	"""A Dovecot, an RQ worker and one listener for the class; channels of earlier tests are
	disabled first, so the listeners share only this class's channels."""

	dovecot_options: dict = {}  # noqa: RUF012

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		disable_channels()
		cls.addClassCleanup(disable_channels)
		frappe.db.delete("Email Channel Listener")
		frappe.db.commit()
		# class cleanups run even when setUpClass fails half-way: the site gets its queues back
		queues = background.own_queues()
		queues.__enter__()
		cls.addClassCleanup(queues.__exit__, None, None, None)
		cls.dovecot = DovecotServer(**cls.dovecot_options).start()
		cls.addClassCleanup(cls.dovecot.stop)
		cls.processes = []
		cls.addClassCleanup(lambda: [process.close() for process in cls.processes])
		cls.processes += [background.worker(), background.listener()]

	def run(self, result=None):
		"""On failure, show what the background processes said."""
		failures = len(result.failures) + len(result.errors) if result else 0
		outcome = super().run(result)
		if result and len(result.failures) + len(result.errors) > failures:
			print("\n".join(p.tail() for p in self.processes))
		return outcome

	def channel(self, prefix: str = "live", **values):
		box = self.dovecot.new_mailbox(prefix)
		channel = dovecot_channel(self.dovecot, box, f"{prefix} {box.user}", **values)
		frappe.db.commit()
		return box, channel.name

	def deliver(self, box, message_id: str, subject: str = "Help, please") -> None:
		self.dovecot.append(box.user, mail(subject, message_id=message_id, to=box.user))

	def row(self, channel: str) -> frappe._dict:
		return frappe.db.get_value(
			"Email Channel",
			channel,
			[
				"live_state",
				"listener",
				"listener_error",
				"last_event_at",
				"consecutive_failures",
				"last_error",
				"enabled",
			],
			as_dict=True,
		)

	def wait_live(self, channel: str, timeout: float = SETTLE) -> frappe._dict:
		return background.wait_until(
			lambda: (row := self.row(channel)).live_state == "Live" and row,
			timeout,
			f"channel {channel} is Live",
		)

	def wait_messages(self, channel: str, message_ids: set[str], timeout: float = 60) -> list:
		def stored():
			messages = messages_of(channel)
			return {m.message_id for m in messages} >= message_ids and messages

		return background.wait_until(stored, timeout, f"{sorted(message_ids)} stored in {channel}")

	def logins(self, user: str, failed: bool = False) -> int:
		"""Logins of `user` in Dovecot's log (refused ones with `failed`)."""
		log = "".join(Path(p).read_text(errors="replace") for p in self.dovecot.log_files)
		marker = "auth failed" if failed else "Login: "
		return sum(marker in line and f"user=<{user}>" in line for line in log.splitlines())

	def assert_once(self, channel: str, message_ids: set[str]) -> None:
		stored = [m.message_id for m in messages_of(channel)]
		self.assertEqual(sorted(stored), sorted(message_ids), "each message exactly once")


class TestListener(ListenerTestCase):
	def test_deliveries_to_several_channels_become_tickets(self):
		channels = [self.channel() for _ in range(3)]
		for _box, name in channels:
			self.wait_live(name)
		for n, (box, _name) in enumerate(channels):
			self.deliver(box, f"several-{n}@client.example")
		for n, (box, name) in enumerate(channels):
			self.wait_messages(name, {f"several-{n}@client.example"})
			self.deliver(box, f"several-{n}-again@client.example")
		for n, (box, name) in enumerate(channels):
			self.wait_messages(name, {f"several-{n}-again@client.example"})
			self.assert_once(name, {f"several-{n}@client.example", f"several-{n}-again@client.example"})
			self.assertTrue(all("\\Seen" in f for f in self.dovecot.flags(box.user).values()))
			row = self.row(name)
			self.assertTrue(row.last_event_at, "the mail event is on the channel's health")
			self.assertIn(":", row.listener)

	def test_the_server_dropping_the_connection(self):
		box, name = self.channel()
		self.wait_live(name)
		for n, crash in enumerate((False, True)):  # a restart (BYE), then a crash (just closed)
			self.assertEqual(self.dovecot.disconnect(box.user, crash=crash), 1)
			background.wait_until(
				lambda: "closed the connection" in (self.row(name).listener_error or ""),
				SETTLE,
				"the drop is recorded",
			)
			self.wait_live(name)
			self.deliver(box, f"after-drop-{n}@client.example")
			self.wait_messages(name, {f"after-drop-{n}@client.example"})
			frappe.db.set_value("Email Channel", name, "listener_error", "", update_modified=False)
			frappe.db.commit()
		self.assertEqual(self.dovecot.sessions(box.user), 1, "one connection, not a second beside it")

	def test_mail_during_a_running_poll_gets_a_poll_of_its_own(self):
		"""The poll job is deduplicated by its id: mail announced while it runs (after its
		search for unread mail) must not wait for the 5-minute poll."""
		box, name = self.channel()
		self.wait_live(name)
		for n in range(12):
			self.deliver(box, f"burst-{n}@client.example")
			time.sleep(0.15)
		self.wait_messages(name, {f"burst-{n}@client.example" for n in range(12)})
		self.assert_once(name, {f"burst-{n}@client.example" for n in range(12)})

	def test_disabled_and_enabled_again_while_idling(self):
		box, name = self.channel()
		self.wait_live(name)
		doc = frappe.get_doc("Email Channel", name)
		doc.enabled = 0
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		background.wait_until(
			lambda: not (row := self.row(name)).listener and row.live_state == "Polling",
			SETTLE,
			"the disabled channel is let go",
		)
		background.wait_until(lambda: not self.dovecot.sessions(box.user), 15, "its connection is closed")
		self.deliver(box, "while-disabled@client.example")
		time.sleep(8)  # more than a round: nothing may poll a disabled channel
		self.assertEqual(messages_of(name), [])

		doc.reload()
		doc.enabled = 1
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		self.wait_live(name)
		self.wait_messages(name, {"while-disabled@client.example"})  # unread when it connected again
		self.deliver(box, "enabled-again@client.example")
		self.wait_messages(name, {"enabled-again@client.example"})
		self.assert_once(name, {"while-disabled@client.example", "enabled-again@client.example"})

	def test_a_wrong_password_is_counted_once_and_retried_after_a_save(self):
		box, name = self.channel(imap_password="not-the-password-42")
		row = background.wait_until(
			lambda: (row := self.row(name)).consecutive_failures and row,
			SETTLE,
			"the refused login is recorded",
		)
		self.assertEqual(row.live_state, "Polling")
		self.assertIn("refused the login", row.listener_error)
		self.assertIn("refused the login", row.last_error)
		for text in (row.listener_error, row.last_error, self.processes[1].tail(400)):
			self.assertNotIn("not-the-password-42", text)
		time.sleep(12)  # two rounds: the listener waits for the poll or a change, as the poll backs off
		self.assertEqual(self.row(name).consecutive_failures, 1)
		self.assertEqual(self.logins(box.user, failed=True), 1, "one attempt, not one a round")

		doc = frappe.get_doc("Email Channel", name)
		doc.imap_password = box.password
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		self.wait_live(name)
		self.deliver(box, "after-fix@client.example")
		self.wait_messages(name, {"after-fix@client.example"})

	def test_a_form_saved_meanwhile_keeps_the_lease(self):
		_box, name = self.channel()
		held = self.wait_live(name)
		doc = frappe.get_doc("Email Channel", name)
		doc.listener, doc.lease_until, doc.live_state = "someone-else:1:x", None, "Polling"
		doc.from_name = "Support"
		doc.save(ignore_permissions=True)
		frappe.db.commit()
		self.assertEqual((self.row(name).listener, self.row(name).live_state), (held.listener, "Live"))


class TestListenersShareAndTakeOver(ListenerTestCase):
	def test_a_second_listener_takes_its_share_and_the_channels_of_one_killed(self):
		frappe.db.set_value("Email Channel", {"enabled": 1}, "enabled", 0, update_modified=False)
		channels = [self.channel("share") for _ in range(4)]
		for _box, name in channels:
			self.wait_live(name)
		first = self.row(channels[0][1]).listener
		second = background.listener()
		self.processes.append(second)

		def spread():
			holders = [self.row(name).listener for _box, name in channels]
			lives = [self.row(name).live_state for _box, name in channels]
			return len(set(holders)) == 2 and set(lives) == {"Live"} and holders

		holders = background.wait_until(spread, 60, "the channels spread over both listeners")
		self.assertEqual(sorted(holders.count(h) for h in set(holders)), [2, 2])
		self.assertEqual(frappe.db.count("Email Channel Listener"), 2)
		for n, (box, _name) in enumerate(channels):
			self.deliver(box, f"before-kill-{n}@client.example")
		for n, (_box, name) in enumerate(channels):
			self.wait_messages(name, {f"before-kill-{n}@client.example"})

		killed = next(h for h in holders if h != first)
		self.assertEqual(int(killed.split(":")[1]), second.pid)
		orphans = [
			(box, name) for (box, name), holder in zip(channels, holders, strict=True) if holder == killed
		]
		second.kill()
		killed_at = time.monotonic()
		for n, (box, _name) in enumerate(orphans):  # mail while nobody listens to these mailboxes
			self.deliver(box, f"during-takeover-{n}@client.example")

		def taken_over():
			return all(
				(row := self.row(name)).listener == first and row.live_state == "Live"
				for _box, name in orphans
			)

		background.wait_until(taken_over, TAKEOVER + 15, "the killed listener's channels taken over")
		takeover = time.monotonic() - killed_at
		print(f"taken over {takeover:.1f} s after kill -9")
		self.assertLess(takeover, TAKEOVER)
		for n, (box, name) in enumerate(orphans):
			self.wait_messages(name, {f"during-takeover-{n}@client.example"})
			self.deliver(box, f"after-takeover-{n}@client.example")
		for n, (box, name) in enumerate(channels):
			expected = {f"before-kill-{n}@client.example"}
			if (box, name) in orphans:
				k = orphans.index((box, name))
				expected |= {f"during-takeover-{k}@client.example", f"after-takeover-{k}@client.example"}
			self.wait_messages(name, expected)
			self.assert_once(name, expected)
			self.assertTrue(all("\\Seen" in f for f in self.dovecot.flags(box.user).values()))
		alive = {"lease_until": (">", database_now())}
		self.assertEqual(
			frappe.db.count("Email Channel Listener", alive), 1, "the killed one no longer counts"
		)

	def test_a_listener_stopped_gives_its_channels_back_at_once(self):
		_box, name = self.channel("stop")
		self.wait_live(name)
		listener = self.processes[1]
		self.assertEqual(listener.stop(), 0)
		frappe.db.rollback()
		row = self.row(name)
		self.assertEqual((row.listener, row.live_state), (None, "Polling"))
		self.processes[1] = background.listener()
		self.wait_live(name)


class TestServerWithoutIdle(ListenerTestCase):
	dovecot_options = {"idle": False}  # noqa: RUF012

	def test_the_channel_stays_on_the_poll_and_says_why(self):
		box, name = self.channel("noidle")
		row = background.wait_until(
			lambda: (row := self.row(name)).listener_error and row, SETTLE, "the missing IDLE is recorded"
		)
		self.assertEqual(row.live_state, "Polling")
		self.assertIn("IDLE", row.listener_error)
		self.assertEqual(row.consecutive_failures, 0, "not a failure: the poll works")
		self.deliver(box, "no-idle@client.example")
		self.assertEqual(poll_channel(name)["stored"], 1)


class TestOffice365Listener(ListenerTestCase):
	"""Tokens that expire while the IDLE connection lives: renewed ahead, logged in again."""

	@classmethod
	def setUpClass(cls):
		os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the test provider is plain HTTP on 127.0.0.1
		cls.addClassCleanup(os.environ.pop, "OAUTHLIB_INSECURE_TRANSPORT", None)
		cls.provider = OAuth2TestServer(access_token_lifetime=int(TOKEN_AHEAD) + 15).start()
		cls.addClassCleanup(cls.provider.stop)
		cls.dovecot_options = {"oauth2_introspection_url": cls.provider.introspection_url}
		super().setUpClass()
		cls.app = connected_app(cls.provider)

	def test_an_expiring_token_is_renewed_on_the_live_connection(self):
		user = f"o365-{frappe.generate_hash(length=6)}@o365.example"
		self.dovecot.add_user(user, frappe.generate_hash(length=12))
		access, refresh = self.provider.issue(user)
		name = make_channel(
			f"live office365 {user}",
			incoming_type="Office 365",
			outgoing_type="Internal",
			imap_username=None,
			imap_password=None,
			imap_email=user,
			from_email=user,
			imap_host=self.dovecot.host,
			imap_port=self.dovecot.ssl_port,
			imap_encryption="SSL",
			ca_certificate=self.dovecot.ca_file.read_text(),
			connected_app=self.app,
			connected_user="Administrator",
		).name
		authorise(self.app, access, refresh, expires_in=int(TOKEN_AHEAD) + 15)
		frappe.db.commit()
		self.wait_live(name)
		self.assertEqual(self.logins(user), 1)
		background.wait_until(
			lambda: token_cache(self.app).get_password("access_token") != access,
			40,
			"the token renewed ahead",
		)
		background.wait_until(lambda: self.logins(user) == 2, 15, "logged in again with the new token")
		self.provider.expire(access)  # the old token is dead: a login with it would fail now
		self.dovecot.disconnect(user)
		background.wait_until(
			lambda: "closed the connection" in (self.row(name).listener_error or ""), SETTLE, "dropped"
		)
		self.wait_live(name)
		row = self.row(name)
		self.assertEqual(row.consecutive_failures, 0)
		self.assertEqual(self.logins(user, failed=True), 0, "no login with a dead token")
		box = frappe._dict(user=user)
		self.deliver(box, "o365-live@client.example")
		self.wait_messages(name, {"o365-live@client.example"})

		self.provider.revoke(token_cache(self.app).get_password("refresh_token"))
		row = background.wait_until(
			lambda: (row := self.row(name)).consecutive_failures and row, 60, "the revoked consent recorded"
		)
		self.assertIn("Authorize again", row.listener_error)
		self.assertEqual(row.live_state, "Polling")
