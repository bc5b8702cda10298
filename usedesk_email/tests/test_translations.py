# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""The app in Russian: every string of it has a translation in `locale/ru.po`, Frappe gives
those translations to a Russian user, and an agent working in Russian sees the Ticket list,
a ticket and its Reply dialog in Russian (headless Chromium).

The strings are found with Frappe's own extractors, as `bench generate-pot-file` finds them
for `locale/main.pot` (the app's `babel_extractors.csv` first, then Frappe's), so a new
`_()` or `__()` call, label, description or option without Russian fails here, named.
"""

import ast
import os
import re
from pathlib import Path

import frappe
import git
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from frappe import _
from frappe.gettext.translate import get_catalog, get_is_gitignored_function_for_app, get_method_map
from frappe.tests.utils import FrappeTestCase
from frappe.translate import get_all_translations, get_translations_from_csv
from frappe.utils import is_html
from frappe.utils.password import update_password

from usedesk_email.channel.connection_check import check_channel
from usedesk_email.testing.browser import chromium, prepare_desk_class
from usedesk_email.testing.desk import desk_user, make_channel, served_site
from usedesk_email.testing.ports import HOST, free_port

APP = "usedesk_email"
LOCALE = "ru"
# A translator's comment in ru.po that leaves a word without context to Frappe's own Russian:
# the app's translation of a word applies to the whole site (Frappe reads the apps' after its
# own), so where the app means something else by it, its code asks with a context instead.
LEFT_TO_FRAPPE = "Left to Frappe:"
REGENERATE = "bash scripts/translations (README, Languages)"
AGENT = "russian-agent@usedesk.test"
PASSWORD = "Russian-Agent-7716!"
WAIT = 30  # seconds for the desk to render anything


def extracted_messages() -> dict[tuple[str, str | None], list[str]]:
	"""Every (message, context) of the app's code with where it is, as generate_pot finds them."""
	app_path = frappe.get_pymodule_path(APP, "..")
	try:
		is_ignored = get_is_gitignored_function_for_app(APP)
	except git.InvalidGitRepositoryError:  # a copy without .git (scripts/frappe-suite runs one)
		is_ignored = lambda dirpath: False  # noqa: E731

	def directory_filter(dirpath) -> bool:
		name = os.path.basename(dirpath)
		return not (is_ignored(str(dirpath)) or name.startswith((".", "_")))

	method_map = get_method_map(APP) + get_method_map("frappe")
	keywords = {**DEFAULT_KEYWORDS, "_lt": None}
	found: dict[tuple[str, str | None], list[str]] = {}
	for filename, lineno, message, _comments, context in extract_from_dir(
		app_path, method_map, directory_filter=directory_filter, keywords=keywords
	):
		if message:
			found.setdefault((message, context), []).append(f"{filename}:{lineno or ''}")
	return found


def described(key: tuple[str, str | None], places: list[str]) -> str:
	message, context = key
	return f"{message!r}" + (f" (context {context!r})" if context else "") + f" at {places[0]}"


def left_to_frappe(entry) -> bool:
	return any(comment.startswith(LEFT_TO_FRAPPE) for comment in entry.user_comments)


def translation_key(entry) -> str:
	"""How Frappe keys a translation in its dictionary (`_()` and `__()` look it up so)."""
	return f"{entry.id}:{entry.context}" if entry.context else entry.id


class TestTranslations(FrappeTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.extracted = extracted_messages()
		cls.russian = get_catalog(APP, LOCALE)

	def test_every_string_of_the_app_has_russian(self):
		missing = []
		for key, places in sorted(self.extracted.items(), key=lambda item: (item[0][0], item[0][1] or "")):
			entry = self.russian.get(*key)
			if entry is not None and not entry.fuzzy and (entry.string or left_to_frappe(entry)):
				continue
			missing.append(described(key, places))
		self.assertEqual(missing, [], f"no Russian for these in locale/ru.po: {REGENERATE}, then translate")

	def test_main_pot_and_ru_po_list_the_strings_of_the_code(self):
		in_code = set(self.extracted)
		in_pot = {(m.id, m.context) for m in get_catalog(APP) if m.id}
		in_po = {(m.id, m.context) for m in self.russian if m.id}
		self.assertEqual(sorted(in_code - in_pot, key=str), [], f"not in main.pot: {REGENERATE}")
		self.assertEqual(sorted(in_pot - in_code, key=str), [], f"no longer in the code: {REGENERATE}")
		self.assertEqual(sorted(in_po - in_code, key=str), [], f"no longer in the code: {REGENERATE}")

	def test_frappe_gives_a_russian_user_the_translations_of_ru_po(self):
		"""What `_()` and the desk's `__()` read: the compiled ru.po, over Frappe's own words."""
		frappe.translate.clear_cache()
		loaded = get_all_translations(LOCALE)
		stale = [
			f"{translation_key(m)!r}: {loaded.get(translation_key(m))!r}, not {m.string!r}"
			for m in self.russian
			if m.id and m.string and loaded.get(translation_key(m)) != m.string
		]
		self.assertEqual(
			stale, [], "the compiled translations are not ru.po's: bench migrate (or bench build) compiles it"
		)
		self.assertEqual(_("Open", lang=LOCALE, context="Ticket"), "Открыт")
		self.assertEqual(_("Resolved", lang=LOCALE, context="Ticket"), "Решён")
		self.assertEqual(_("Client E-mail", lang=LOCALE), "E-mail клиента")
		self.assertEqual(_("CC Participants", lang=LOCALE), "Участники в копии")
		self.assertEqual(_("Ticket", lang=LOCALE), "Тикет")
		self.assertEqual(_("Email Channel", lang=LOCALE), "Почтовый канал")
		self.assertEqual(_("Support Agent", lang=LOCALE), "Агент поддержки")
		self.assertEqual(
			_("Ticket {0} has no client address to reply to.", lang=LOCALE).format(7),
			"У тикета 7 нет адреса клиента для ответа.",
		)

	def test_words_left_to_frappe_keep_frappes_russian_and_have_the_apps_in_context(self):
		left = [m for m in self.russian if m.id and left_to_frappe(m)]
		self.assertIn("Open", [m.id for m in left])
		frappes = get_translations_from_csv(LOCALE, "frappe")
		for entry in left:
			with self.subTest(entry.id):
				self.assertEqual(entry.string, "", "a word left to Frappe is not translated by the app")
				self.assertTrue(
					frappes.get(entry.id), "Frappe has Russian for it, or it would show in English"
				)
				self.assertEqual(_(entry.id, lang=LOCALE), frappes[entry.id])
				own = [m.string for m in self.russian if m.id == entry.id and m.context]
				self.assertTrue(own and all(own), f"the app's own {entry.id!r} is asked for with a context")

	def test_placeholders_survive_translation(self):
		placeholder = re.compile(r"\{\d*\}")
		for entry in self.russian:
			if entry.id and entry.string:
				with self.subTest(entry.id):
					self.assertEqual(
						sorted(placeholder.findall(entry.id)), sorted(placeholder.findall(entry.string))
					)

	def test_no_translation_call_babel_cannot_see(self):
		"""Babel reads an f-string as one token, so a `_()` inside one never reaches main.pot;
		and Frappe's `_()` strips tags from a string before looking it up, so a Python string
		with markup is never translated."""
		hidden = []
		for path in Path(frappe.get_app_path(APP)).rglob("*.py"):
			for node in ast.walk(ast.parse(path.read_text(), str(path))):
				if isinstance(node, ast.JoinedStr):
					for call in ast.walk(node):
						if (
							isinstance(call, ast.Call)
							and "_" in (getattr(call.func, "id", None), getattr(call.func, "attr", None))
							and call.args
							and isinstance(call.args[0], ast.Constant)
						):
							hidden.append(f"{path}:{call.lineno}")
		self.assertEqual(hidden, [], "a translated string inside an f-string: translate it outside")
		with_markup = [
			described(key, places)
			for key, places in self.extracted.items()
			if is_html(key[0]) and any(p.split(":")[0].endswith(".py") for p in places)
		]
		self.assertEqual(with_markup, [], "markup in a Python string to translate")


class TestRussianMessages(FrappeTestCase):
	"""What the app says from the server in the reader's language, also when the engine speaks."""

	def test_test_connection_speaks_russian_and_keeps_the_engines_detail(self):
		channel = make_channel(
			f"russian check {frappe.generate_hash(length=8)}",
			imap_host=HOST,
			imap_port=free_port(),
			outgoing_type="External",
			smtp_host=HOST,
			smtp_port=free_port(),
			smtp_encryption="STARTTLS",
		)
		saved = frappe.local.lang
		try:
			frappe.local.lang = "en"
			english = {row["label"]: row["message"] for row in check_channel(channel)["checks"]}
			frappe.local.lang = LOCALE
			russian = {row["label"]: row["message"] for row in check_channel(channel)["checks"]}
		finally:
			frappe.local.lang = saved
		self.assertEqual(set(english), {"Incoming (IMAP)", "Outgoing (SMTP)"})
		self.assertEqual(set(russian), {"Входящая почта (IMAP)", "Исходящая почта (SMTP)"})
		for english_label, russian_label in (
			("Incoming (IMAP)", "Входящая почта (IMAP)"),
			("Outgoing (SMTP)", "Исходящая почта (SMTP)"),
		):
			refused = english[english_label]
			self.assertIn("refused", refused)
			self.assertEqual(russian[russian_label], f"Не удалось подключиться к серверу: {refused}")


class TestRussianDesk(FrappeTestCase):
	"""An agent whose language is Russian opens the Ticket list, a ticket and its Reply dialog."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		prepare_desk_class(cls)
		cls.channel = make_channel(f"russian {frappe.generate_hash(length=8)}", forward_as_new_ticket=1)
		cls.tickets = {
			status: frappe.get_doc(
				{
					"doctype": "Ticket",
					"subject": f"Вопрос о заказе {number}",
					"status": status,
					"channel": cls.channel.name,
					"client_email": "klient@example.org",
				}
			)
			.insert(ignore_permissions=True)
			.name
			for number, status in enumerate(("Open", "Replied", "Resolved", "Closed"), start=1)
		}
		user = desk_user(AGENT, "Support Agent")
		user.language = LOCALE
		user.save(ignore_permissions=True)
		update_password(AGENT, PASSWORD)
		frappe.db.commit()  # the served site is another process
		frappe.clear_cache(user=AGENT)
		frappe.translate.clear_cache()
		site = served_site()
		cls.base = site.__enter__()
		cls.addClassCleanup(site.__exit__, None, None, None)

	def wait(self, driver, script: str, *args, timeout: float = WAIT):
		from selenium.webdriver.support.ui import WebDriverWait

		return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
			lambda d: d.execute_script(script, *args)
		)

	def log_in(self, driver):
		from selenium.webdriver.common.by import By

		driver.get(f"{self.base}/login")
		self.wait(driver, "return !!document.getElementById('login_email')")
		driver.find_element(By.ID, "login_email").send_keys(AGENT)
		driver.find_element(By.ID, "login_password").send_keys(PASSWORD)
		driver.find_element(By.CSS_SELECTOR, ".page-card-body .btn-login").click()
		self.wait(
			driver, "return !location.pathname.startsWith('/login') && !!window.frappe && !!frappe.boot"
		)

	def shot(self, driver, name: str):
		driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

	def page_text(self, driver) -> str:
		return driver.execute_script("return document.body.innerText")

	def assert_russian(self, driver, where: str):
		"""None of the app's English words, and not Frappe's «Создано» for an open ticket."""
		text = self.page_text(driver)
		self.assertNotIn("Создано", text, where)
		for english in (
			"Client E-mail",
			"CC Participants",
			"Add CC participants",
			"Forward message",
			"Reply",
		):
			self.assertNotIn(english, text, where)

	def assert_all_russian(self, texts: list[str], where: str):
		"""Each text has Russian words in it (a label of a field added later is checked too)."""
		self.assertTrue(texts, where)
		english = [text for text in texts if not re.search("[А-Яа-яЁё]", text)]
		self.assertEqual(english, [], f"English in {where}")

	def test_an_agent_works_in_russian(self):
		driver = chromium(self.addCleanup)
		self.log_in(driver)
		self.assertEqual(driver.execute_script("return frappe.boot.lang"), LOCALE)

		# the Ticket list: its title and every status in the ticket's own words
		driver.get(f"{self.base}/app/ticket?channel={self.channel.name}")
		self.wait(
			driver,
			"return window.cur_list && cur_list.doctype === 'Ticket'"
			" && document.querySelectorAll('.list-row-container').length >= 4",
		)
		listed = driver.execute_script(
			"return {title: cur_list.page.title, statuses: [...document.querySelectorAll("
			"'.list-row-container .indicator-pill')].filter((e) => e.offsetParent)"
			".map((e) => e.innerText.trim())}"
		)
		self.shot(driver, "ru-ticket-list")
		self.assertEqual(listed["title"], "Тикет")
		self.assertEqual(sorted(listed["statuses"]), ["Закрыт", "Открыт", "Решён", "С ответом"])
		self.assert_russian(driver, "the Ticket list")
		self.assertEqual(
			driver.execute_script(
				"return [...cur_list.page.fields_dict.status.$input.find('option')].map((o) => o.text)"
			),
			["", "Открыт", "С ответом", "Решён", "Закрыт"],
			"the list's status filter",
		)

		# the report view formats the status cells itself
		driver.get(f"{self.base}/app/ticket/view/report?channel={self.channel.name}")
		self.wait(
			driver,
			"return window.cur_list && cur_list.view === 'Report' && cur_list.datatable"
			" && cur_list.data.length >= 4 && document.querySelectorAll('.dt-row').length > 4",
		)
		cells = driver.execute_script(
			"const column = cur_list.datatable.getColumns().find((c) => c.docfield && c.docfield.fieldname === 'status');"
			"return [...document.querySelectorAll(`.dt-scrollable .dt-cell--col-${column.colIndex} .dt-cell__content`)]"
			".map((e) => e.innerText.trim()).filter(Boolean)"
		)
		self.shot(driver, "ru-ticket-report")
		self.assertEqual(sorted(cells), ["Закрыт", "Открыт", "Решён", "С ответом"])
		self.assert_russian(driver, "the report view")

		# the open ticket: labels, status, buttons
		driver.execute_script("frappe.set_route('Form', 'Ticket', arguments[0])", str(self.tickets["Open"]))
		self.wait(
			driver,
			"return window.cur_frm && cur_frm.doc.name == arguments[0]"
			" && cur_frm.custom_buttons['Ответить'] && cur_frm.custom_buttons['Переслать сообщение']",
			str(self.tickets["Open"]),
		)
		form = driver.execute_script(
			"""
			const label = (f) => cur_frm.fields_dict[f].$wrapper.find('.control-label').first().text().trim();
			// every label and description of the Ticket's own fields, sections included
			const own = [];
			for (const df of cur_frm.meta.fields) {
				const field = cur_frm.fields_dict[df.fieldname];
				if (!field) continue;
				const $field = $(field.$wrapper || field.wrapper);
				if (df.label) own.push($field.find('.control-label, .section-head').first().text().trim());
				if (df.description) own.push($field.find('.help-box').first().text().trim());
			}
			return {
				labels: ['client_email', 'cc_addresses', 'status', 'subject', 'opened_at'].map(label),
				own: own.filter(Boolean), // a field Frappe has not drawn (empty, read-only) has none
				status: cur_frm.fields_dict.status.$input.find('option:selected').text().trim(),
				options: [...cur_frm.fields_dict.status.$input.find('option')].map((o) => o.text.trim()),
				pill: $('.page-head .indicator-pill:visible').first().text().trim(),
				app_buttons: Object.keys(cur_frm.custom_buttons),
				buttons: [...document.querySelectorAll('.page-actions button')]
					.map((b) => b.innerText.trim()).filter(Boolean),
			};
			"""
		)
		self.shot(driver, "ru-ticket-form")
		self.assertEqual(form["labels"], ["E-mail клиента", "Участники в копии", "Статус", "Тема", "Открыт"])
		self.assert_all_russian(form["own"] + form["app_buttons"], "the ticket")
		self.assertEqual(form["status"], "Открыт")
		self.assertEqual(form["options"], ["Открыт", "С ответом", "Решён", "Закрыт"])
		self.assertEqual(form["pill"], "Открыт")
		self.assertIn("Ответить", form["buttons"])
		self.assertIn("Переслать сообщение", form["buttons"])
		self.assert_russian(driver, "the ticket")

		# its Reply dialog
		driver.execute_script("window.scrollTo(0, 0); cur_frm.custom_buttons['Ответить'][0].click()")
		self.wait(driver, "return window.cur_dialog && cur_dialog.$wrapper.hasClass('show')")
		dialog = driver.execute_script(
			"""
			const $dialog = cur_dialog.$wrapper;
			return {
				title: $dialog.find('.modal-title').text().trim(),
				labels: [...$dialog.find('.control-label')].map((e) => e.innerText.trim()).filter(Boolean),
				descriptions: [...$dialog.find('.help-box')].map((e) => e.innerText.trim()).filter(Boolean),
				primary: cur_dialog.get_primary_btn().text().trim(),
			};
			"""
		)
		self.shot(driver, "ru-reply-dialog")
		self.assertIn("Добавить участников в копию", dialog["labels"])
		self.assertIn("Через запятую; каждый участник получит своё письмо.", dialog["descriptions"])
		self.assertEqual(dialog["primary"], "Отправить")
		self.assert_all_russian(
			[dialog["title"], *dialog["labels"], *dialog["descriptions"], dialog["primary"]],
			"the Reply dialog",
		)
		self.assert_russian(driver, "the Reply dialog")
