# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The Email Channel form in headless Chromium, typed into as an admin does: provider hosts that
follow the address, what is required, one Missing Fields dialog, what shows for which type."""

import time

import frappe
from frappe.tests.utils import FrappeTestCase
from frappe.utils.password import update_password

from usedesk_email.testing.browser import DeskBrowser, chromium, prepare_desk_class
from usedesk_email.testing.desk import desk_user, make_channel, served_site

MANAGER = "channel-form-manager@usedesk.test"
PASSWORD = "Channel-Manager-4417!"
HOSTS = "return [cur_frm.doc.imap_host, cur_frm.doc.imap_port, cur_frm.doc.smtp_host, cur_frm.doc.smtp_port]"
STRENGTH_CHECKS = "return performance.getEntriesByType('resource').filter((e) => e.name.includes('test_password_strength')).length"


class TestChannelFormBrowser(DeskBrowser, FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		prepare_desk_class(cls)
		desk_user(MANAGER, "Support Manager")
		update_password(MANAGER, PASSWORD)
		frappe.db.commit()  # the served site is another process
		site = served_site()
		cls.base = site.__enter__()
		cls.addClassCleanup(site.__exit__, None, None, None)

	def setUp(self):
		self.driver = chromium(self.addCleanup)
		self.log_in(self.driver, MANAGER, PASSWORD)

	def new_channel(self, name: str):
		self.addCleanup(self.delete_channel, name)
		self.driver.get(f"{self.base}/app/email-channel/new")
		self.until_js(
			self.driver, "return window.cur_frm && cur_frm.doctype == 'Email Channel' && cur_frm.is_new()"
		)
		self.type_into("channel_name", name)

	def delete_channel(self, name: str):
		frappe.db.commit()  # see what the served site saved
		if frappe.db.exists("Email Channel", name):
			frappe.delete_doc("Email Channel", name, force=True, ignore_permissions=True)
			frappe.db.commit()

	def type_into(self, fieldname: str, text: str):
		"""Select what the field holds and type over it, then Tab away, as a person does."""
		from selenium.webdriver.common.keys import Keys

		field = self.driver.execute_script("return cur_frm.get_field(arguments[0]).$input[0]", fieldname)
		field.click()
		field.send_keys(Keys.CONTROL, "a")
		field.send_keys(text, Keys.TAB)
		self.until_js(self.driver, "return cur_frm.doc[arguments[0]] == arguments[1]", fieldname, text)

	def hosts_become(self, expected: list):
		self.until_js(self.driver, f"{HOSTS}.join() == arguments[0].join()", expected, timeout=10)

	def test_hosts_follow_the_address_to_another_provider_unless_typed(self):
		self.new_channel("form hosts")
		self.type_into("imap_username", "support@gmail.com")
		self.hosts_become(["imap.gmail.com", 993, "smtp.gmail.com", 465])
		self.type_into("imap_username", "support@yandex.ru")
		self.hosts_become(["imap.yandex.ru", 993, "smtp.yandex.ru", 465])
		self.shot(self.driver, "channel-hosts-yandex")

		self.type_into("imap_host", "imap.mycorp.example")
		self.type_into("imap_username", "support@icloud.com")
		self.hosts_become(["imap.mycorp.example", 993, "smtp.mail.me.com", 587])
		time.sleep(1)  # nothing comes later to overwrite the typed host
		self.assertEqual(self.driver.execute_script(HOSTS)[0], "imap.mycorp.example")
		self.shot(self.driver, "channel-hosts-typed")

	def test_one_missing_fields_dialog_names_the_imap_password(self):
		from selenium.webdriver.common.action_chains import ActionChains
		from selenium.webdriver.common.keys import Keys

		self.new_channel("form required")
		self.type_into("imap_username", "support@gmail.com")
		self.type_into("from_email", "support@gmail.com")
		self.hosts_become(["imap.gmail.com", 993, "smtp.gmail.com", 465])
		required = "return !!cur_frm.get_field(arguments[0]).$wrapper.find('.control-label.reqd').length"
		self.assertTrue(self.driver.execute_script(required, "imap_password"))
		self.driver.execute_script("cur_frm.set_value('smtp_use_imap_credentials', 0)")
		self.until_js(self.driver, required, "smtp_username")
		self.driver.execute_script("cur_frm.set_value('smtp_use_imap_credentials', 1)")

		ActionChains(self.driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
		self.until_js(self.driver, "return $('.modal.show').length")
		time.sleep(3)  # a second dialog, from the server, would be here by now
		dialogs = self.driver.execute_script("return [...$('.modal.show')].map((m) => m.innerText)")
		self.shot(self.driver, "channel-missing-fields")
		self.assertEqual(len(dialogs), 1, dialogs)
		self.assertIn("Missing Fields", dialogs[0])
		self.assertIn("IMAP Password", dialogs[0])
		self.assertTrue(self.driver.execute_script("return cur_frm.is_new()"), "nothing reached the server")
		self.driver.execute_script("cur_dialog.hide()")
		self.until_js(self.driver, "return !$('.modal.show').length")

		self.type_into("imap_password", "app-Password-1")
		time.sleep(1.5)  # the meter asks the server half a second after a key
		meter = "return cur_frm.get_field('imap_password').$wrapper.find('.password-strength-indicator').is(':visible')"
		self.assertFalse(self.driver.execute_script(meter), "no strength meter on a mailbox password")
		self.assertEqual(
			self.driver.execute_script(STRENGTH_CHECKS), 0, "the password was not sent to be rated"
		)
		ActionChains(self.driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
		self.until_js(self.driver, "return !cur_frm.is_new() && !cur_frm.is_dirty()")
		self.assertEqual(self.driver.execute_script("return $('.modal.show').length"), 0)

	def test_what_shows_for_external_and_internal_channels(self):
		external = make_channel("form external", outgoing_type="External", smtp_host="smtp.example.com")
		internal = make_channel("form internal", incoming_type="Internal", main_email="help@example.com")
		frappe.db.commit()
		for channel in (external, internal):
			self.addCleanup(self.delete_channel, channel.name)
		shown = {}
		for channel in (external, internal):
			self.driver.get(f"{self.base}/app/email-channel/{channel.name}")
			self.until_js(
				self.driver,
				"return window.cur_frm && cur_frm.doc.name == arguments[0] && cur_frm.custom_buttons[__('Test Connection')]",
				channel.name,
			)
			shown[channel.incoming_type] = self.driver.execute_script(
				"const visible = (f) => $(cur_frm.get_field(f).$wrapper || cur_frm.get_field(f).wrapper).is(':visible');"
				"return [Object.keys(cur_frm.custom_buttons).includes(__('Copy Internal Address')),"
				" visible('certificates_section'), visible('health_section'), visible('internal_address')]"
			)
			self.shot(self.driver, f"channel-{channel.incoming_type.lower()}")
		self.assertEqual(shown["External"], [False, True, True, False])
		self.assertEqual(shown["Internal"], [True, False, False, True])

		help_text = "return cur_frm.get_field(arguments[0]).$wrapper.find('.help-box').text()"
		display, do_not = (
			self.driver.execute_script(help_text, f) for f in ("display_quote", "do_not_quote")
		)
		self.assertIn("unless Do Not Quote", display)
		self.assertIn("Overrides Display a Quote in the Response", do_not)
