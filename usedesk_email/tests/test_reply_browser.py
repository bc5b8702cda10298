# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The agent's ticket page in headless Chromium, on a desk screen and a 390 px phone: the Reply
dialog driven from the keyboard up to the letter at a real SMTP server, Frappe's composer
(Ctrl+E), and what a phone shows first."""

import frappe
from frappe.utils.password import update_password

from usedesk_email.outbound.delivery import send_communication
from usedesk_email.testing.browser import DeskBrowser, as_phone, chromium, prepare_desk_class
from usedesk_email.testing.desk import served_site
from usedesk_email.testing.replies import ReplyFixture

PASSWORD = "Reply-Agent-7731!"
TYPED = "We will send a new kettle today."

# Where the phone's first screen ends, and where the ticket's parts are on it.
LAYOUT = """
const rect = (el) => el.getBoundingClientRect();
const box = document.querySelector(".timeline-message-box");
const header = box.querySelector(":scope > .flex > :first-child");
const reply = rect(cur_frm.custom_buttons[__("Reply")][0]);
return {
	screen: innerHeight,
	reply: [reply.top, reply.bottom, reply.width],
	message: rect(box.querySelector(".content")).top,
	subject: rect(cur_frm.get_field("subject").$wrapper[0]).top,
	header: rect(header).width / rect(box).width,
	sideways: document.scrollingElement.scrollWidth > innerWidth,
};
"""


class TestReplyBrowser(DeskBrowser, ReplyFixture):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		prepare_desk_class(cls)
		update_password(cls.agent, PASSWORD)
		frappe.db.commit()  # the served site is another process
		site = served_site()
		cls.base = site.__enter__()
		cls.addClassCleanup(site.__exit__, None, None, None)

	def open_ticket(self, phone: bool = False):
		driver = chromium(self.addCleanup)
		if phone:
			as_phone(driver)
		self.log_in(driver, self.agent, PASSWORD)
		driver.get(f"{self.base}/app/ticket/{self.ticket}")
		self.until_js(
			driver,
			"return window.cur_frm && cur_frm.doc.name == arguments[0] && cur_frm.custom_buttons[__('Reply')]"
			" && $('.timeline-message-box .content').length && !$('.modal.show').length",
			self.ticket,
		)
		return driver

	def open_reply(self, driver):
		button = driver.execute_script("return cur_frm.custom_buttons[__('Reply')][0]")
		self.assertTrue(button.is_displayed(), "Reply is a button of the page, not in the ... menu")
		button.click()
		self.until_js(  # the dialog, with the preview of what goes under the message
			driver,
			"return window.cur_dialog && cur_dialog.display && cur_dialog.$wrapper.find('details').length",
		)

	def test_reply_from_the_keyboard_on_a_desk_screen(self):
		self.reply_from_the_keyboard(phone=False)

	def test_reply_from_the_keyboard_on_a_phone(self):
		self.reply_from_the_keyboard(phone=True)

	def reply_from_the_keyboard(self, phone: bool):
		from selenium.webdriver.common.action_chains import ActionChains
		from selenium.webdriver.common.keys import Keys

		name = "phone" if phone else "desk"
		driver = self.open_ticket(phone)
		self.open_reply(driver)
		focus = driver.execute_script(
			"const el = document.activeElement; return [el.className, el.closest('[data-fieldname]')?.dataset.fieldname]"
		)
		self.assertEqual(focus, ["ql-editor ql-blank", "content"], "the cursor is in the message")
		preview = driver.execute_script(
			"return [...cur_dialog.$wrapper.find('details')].map((d) => [d.querySelector('summary').innerText,"
			" d.open, d.querySelector('.usedesk-closing-body').textContent])"
		)
		self.assertEqual(
			[(label, is_open) for label, is_open, _ in preview],
			[("Signature", False), ("Quoted conversation", False)],
		)
		self.assertIn("Anna Smith, second line support", preview[0][2])
		self.assertIn("My kettle is broken.", preview[1][2])
		driver.switch_to.active_element.send_keys(TYPED)
		self.shot(driver, f"reply-dialog-{name}")
		# at once: the editor hands its text on after a pause, the reply must not lose it
		ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).send_keys(Keys.ENTER).key_up(
			Keys.CONTROL
		).perform()
		self.until_js(driver, "return !$('.modal.show').length")
		self.until_js(  # the form reloads with the reply in its timeline
			driver,
			"return [...document.querySelectorAll('.timeline-message-box')].some((b) => b.innerText.includes(arguments[0]))",
			TYPED,
		)
		self.shot(driver, f"reply-sent-{name}")

		frappe.db.commit()  # a new snapshot: the served site wrote the reply
		sent = frappe.get_all(
			"Communication",
			filters={
				"reference_doctype": "Ticket",
				"reference_name": self.ticket,
				"sent_or_received": "Sent",
			},
			fields=["name", "content", "owner"],
		)
		self.assertEqual(len(sent), 1, "Ctrl+Enter twice sends one reply")
		self.assertIn(TYPED, sent[0].content)
		self.assertEqual(sent[0].owner, self.agent)
		send_communication(sent[0].name)
		self.assertEqual(
			set(self.letters()), {"client@example.org", "boss@example.org", "archive@shop.example"}
		)
		html = self.letters()["client@example.org"].get_body(("html",)).get_content()
		self.assertIn(TYPED, html)
		self.assertEqual(html.count("Anna Smith, second line support"), 1, "the signature the dialog showed")
		self.assertIn("My kettle is broken.", html, "and the quote it showed")

	def test_a_phone_shows_the_conversation_and_reply_first(self):
		driver = self.open_ticket(phone=True)
		self.shot(driver, "ticket-phone")
		layout = driver.execute_script(LAYOUT)
		top, bottom, width = layout["reply"]
		self.assertTrue(width and top >= 0 and bottom <= layout["screen"], layout)
		self.assertLess(
			layout["message"], layout["screen"] - 40, f"the message starts on the first screen: {layout}"
		)
		self.assertLess(layout["message"], layout["subject"], "before the ticket's fields")
		self.assertGreater(layout["header"], 0.6, "the message's header is not squeezed to a word a line")
		self.assertFalse(layout["sideways"], "the page does not scroll sideways")

		self.open_reply(driver)
		driver.execute_script("cur_dialog.$wrapper.find('details').attr('open', true)")
		quote = driver.execute_script("return cur_dialog.$wrapper.find('details blockquote')[0]")
		self.assertTrue(quote.is_displayed())
		self.assertIn("My kettle is broken.", quote.text)
		self.shot(driver, "reply-dialog-phone-preview-open", quote)

	def test_ctrl_e_opens_the_composer_with_the_subject_and_no_print(self):
		from selenium.webdriver.common.action_chains import ActionChains
		from selenium.webdriver.common.keys import Keys

		driver = self.open_ticket()
		layout = driver.execute_script(LAYOUT)
		self.assertLess(
			layout["subject"], layout["message"], "a desk screen keeps the form above the timeline"
		)
		self.shot(driver, "ticket-desk")
		driver.execute_script("document.activeElement.blur()")
		ActionChains(driver).key_down(Keys.CONTROL).send_keys("e").key_up(Keys.CONTROL).perform()
		self.until_js(
			driver, "return window.cur_dialog && cur_dialog.display && !!cur_dialog.fields_dict.subject"
		)
		composer = driver.execute_script(
			"const fields = cur_dialog.fields_dict; const shown = (f) => fields[f].$wrapper.is(':visible');"
			"return [cur_dialog.get_value('subject'), fields.attach_document_print.$input.prop('checked'),"
			" shown('attach_document_print'), shown('select_print_format'), shown('send_me_a_copy')]"
		)
		# the print options are gone; the checkbox beside them still shows
		self.assertEqual(composer, ["Kettle broken", False, False, False, True])
		self.shot(driver, "composer-desk")
