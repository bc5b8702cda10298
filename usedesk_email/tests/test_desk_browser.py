# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

"""Hostile mail opened in a real desk: headless Chromium against this site served over HTTP.

The Frappe tests of the stored values cannot show what the desk's templates, list and
dialogs do with them; only a browser can tell that no script ran, that the agent stayed
logged in, that remote images wait for "Show images" and that mail HTML stays in its box.
"""

import base64
import io
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import frappe
from frappe.desk.form import assign_to
from frappe.tests.utils import FrappeTestCase
from frappe.utils.password import update_password
from PIL import Image

from usedesk_email.api import ticket_context
from usedesk_email.inbound.batch import ingest_raw
from usedesk_email.inbound.listen import Held, Listener
from usedesk_email.inbound.poll import record_failure
from usedesk_email.mail.errors import AuthenticationError
from usedesk_email.search_index import index_queued
from usedesk_email.testing.browser import DeskBrowser, as_phone, chromium, prepare_desk_class
from usedesk_email.testing.desk import desk_user, mail, make_channel, remove_channel_rows, served_site
from usedesk_email.testing.ports import HOST
from usedesk_email.ticket_views import own_view

AGENT = "browser-agent@usedesk.test"
PASSWORD = "Browser-Agent-5519!"

# Shapes of markup in every header that reaches the desk; each one calls alert() if it runs.
PAYLOADS = (
	"<img src=x onerror=alert(1)>",
	"<svg/onload=alert(1)>",
	"<script>alert(document.cookie)</script>",
	'"><img src=x onerror=alert(1)>',
	"<img src=x onerror=alert(1)",  # never closed
	"<details open ontoggle=alert(1)>",
)

# Installed before any page script: every way a payload can show itself becomes a count
# kept in sessionStorage, so a reload cannot reset it.
HOOKS = """
(() => {
	const key = "usedesk_xss";
	const bump = (kind, arg) => {
		const log = JSON.parse(sessionStorage.getItem(key) || "[]");
		log.push(kind + ": " + String(arg).slice(0, 200));
		sessionStorage.setItem(key, JSON.stringify(log));
		window.__xss = log.length;
	};
	window.__xss = JSON.parse(sessionStorage.getItem(key) || "[]").length;
	for (const name of ["alert", "confirm", "prompt", "print"]) {
		const hook = function (arg) { bump(name, arg); return name === "confirm" ? false : null; };
		Object.defineProperty(window, name, { get: () => hook, set: () => {}, configurable: false });
	}
})();
"""

# Markup from a payload in the DOM, whether or not its handler has fired yet.
FIND_MARKUP = r"""
const calls = ["alert(1)", "alert(document.cookie)"];
const found = [];
for (const el of document.querySelectorAll("*")) {
	for (const attr of el.attributes) {
		const active = attr.name.startsWith("on") || /^\s*javascript:/i.test(attr.value);
		if (active && calls.some((call) => attr.value.includes(call))) found.push(`${el.tagName} ${attr.name}=${attr.value}`);
	}
	if (el.tagName === "SCRIPT" && !el.src && calls.some((call) => el.textContent.includes(call))) {
		found.push("SCRIPT " + el.textContent.slice(0, 200));
	}
}
return {xss: window.__xss, log: JSON.parse(sessionStorage.getItem("usedesk_xss") || "[]"), markup: found};
"""

# Mail elements that position themselves, or are big enough to cover the desk.
OUT_OF_PLACE = """
const box = arguments[0];
const content = box.querySelector(".content");
const bad = [];
for (const el of content.querySelectorAll("*")) {
	const style = getComputedStyle(el);
	const rect = el.getBoundingClientRect();
	if (["fixed", "absolute", "sticky"].includes(style.position)) bad.push(el.outerHTML.slice(0, 120));
	if (parseInt(style.zIndex) > 0) bad.push("z-index: " + el.outerHTML.slice(0, 120));
}
const chrome = ".navbar, .page-head, .page-head button, .layout-side-section, .form-layout, .comment-box";
for (const target of document.querySelectorAll(chrome)) {
	const rect = target.getBoundingClientRect();
	if (!rect.width) continue;
	const hit = document.elementFromPoint(rect.left + rect.width / 2, rect.top + rect.height / 2);
	if (hit && content.contains(hit)) bad.push("over " + target.className + ": " + hit.outerHTML.slice(0, 120));
}
if (document.scrollingElement.scrollWidth > innerWidth) bad.push("the page scrolls sideways");
return bad;
"""


class PixelServer:
	"""A tiny HTTP server on 127.0.0.1 standing in for a mail sender's tracking host: it
	records every request, so a test can tell whether the browser fetched a remote image."""

	GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")

	def __init__(self):
		self.requests: list[str] = []
		owner = self

		class Handler(BaseHTTPRequestHandler):
			def do_GET(self):
				owner.requests.append(self.path)
				self.send_response(200)
				self.send_header("Content-Type", "image/gif")
				self.send_header("Content-Length", str(len(owner.GIF)))
				self.send_header("Cache-Control", "no-store")
				self.end_headers()
				self.wfile.write(owner.GIF)

			def log_message(self, *args):
				pass

		self.server = ThreadingHTTPServer((HOST, 0), Handler)
		self.url = f"http://{HOST}:{self.server.server_address[1]}"
		self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
		self.thread.start()

	def close(self):
		self.server.shutdown()
		self.server.server_close()


def encoded(text: str) -> str:
	return f"=?utf-8?B?{base64.b64encode(text.encode()).decode()}?="


def quoted(text: str) -> str:
	return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hostile_mail(index: int, payload: str, shape: str, run: str) -> bytes:
	"""The payload in the Subject, the From and Cc names, a quoted local part, the body
	and an attachment's file name; `shape` is "plain" or "encoded" (RFC 2047 / 2231).

	The attachment's bytes are the mail's own: Frappe stores equal bytes once, under the
	first file's name, and the timeline shows that name."""
	if shape == "encoded":
		subject, name, cc_name = encoded(f"Hi {payload}"), encoded(f"Eve {payload}"), encoded(f"Cc {payload}")
		disposition = f"attachment; filename*=utf-8''{quote(payload + '.pdf', safe='')}"
	else:
		subject, name, cc_name = f"Hi {payload}", quoted(f"Eve {payload}"), quoted(f"Cc {payload}")
		disposition = f"attachment; filename={quoted(payload + '.pdf')}"
	head = (
		f"From: {name} <eve{index}{shape}@evil.example>\r\n"
		"To: help@example.com\r\n"
		f"Cc: {cc_name} <cc{index}{shape}@evil.example>, {quoted(payload)}@evil.example\r\n"
		f"Subject: {subject}\r\n"
		f"Message-ID: <browser{index}{shape}.{run}@evil.example>\r\n"
		"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
		'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
	)
	body = (
		'--b1\r\nContent-Type: text/plain; charset="utf-8"\r\n\r\n'
		f"Body {payload}\r\n"
		f"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: {disposition}\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		f"{base64.b64encode(f'%PDF-1.4 {index}{shape}{run}'.encode()).decode()}\r\n--b1--\r\n"
	)
	return (head + body).encode()


def png(color: tuple[int, int, int]) -> bytes:
	out = io.BytesIO()
	Image.new("RGB", (40, 20), color).save(out, format="PNG")
	return out.getvalue()


def html_mail(pixel_url: str, run: str) -> bytes:
	"""An HTML mail with everything that must not act by itself: a logout image, a remote
	tracking pixel, a fake full-page overlay; and an inline cid: image that must show."""
	html = (
		"<html><body><p>Mail body marker</p>"
		'<img src="/api/method/logout" alt="logout">'
		f'<img src="{pixel_url}" alt="tracking pixel" width="1" height="1">'
		'<div class="modal-backdrop fade show" style="position:fixed;top:0;left:0;width:100vw;'
		'height:100vh;z-index:99999;background:#000;opacity:.9">Your session expired, sign in again</div>'
		'<div style="position:absolute;top:-300px;left:0;width:2000px;height:2000px">absolute</div>'
		'<p><img src="cid:logo@example.org" alt="inline logo"></p></body></html>'
	)
	return (
		'From: "Html Sender" <html@example.org>\r\nTo: help@example.com\r\n'
		f"Subject: Images and overlay\r\nMessage-ID: <html.{run}@example.org>\r\n"
		"Date: Thu, 26 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\n"
		'Content-Type: multipart/related; boundary="r1"\r\n\r\n'
		f'--r1\r\nContent-Type: text/html; charset="utf-8"\r\n\r\n{html}\r\n'
		"--r1\r\nContent-Type: image/png\r\nContent-ID: <logo@example.org>\r\n"
		'Content-Disposition: inline; filename="logo.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
		f"{base64.b64encode(png((200, 30, 30))).decode()}\r\n--r1--\r\n"
	).encode()


@contextmanager
def administrator_password():
	"""A password of our own for Administrator while the browser logs in; the site's own
	hash is put back right after (the session stays logged in)."""
	where = "doctype='User' AND name='Administrator' AND fieldname='password'"
	saved = frappe.db.sql(f"SELECT password FROM `__Auth` WHERE {where}")
	password = frappe.generate_hash(length=20)
	update_password("Administrator", password)
	frappe.db.commit()
	try:
		yield password
	finally:
		if saved:
			frappe.db.sql(f"UPDATE `__Auth` SET password=%s WHERE {where}", saved[0][0])
		else:
			frappe.db.sql(f"DELETE FROM `__Auth` WHERE {where}")
		frappe.db.commit()


class TestDeskBrowser(DeskBrowser, FrappeTestCase):
	"""The Ticket list, form, Reply and Forward dialogs in headless Chromium, logged in."""

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		prepare_desk_class(cls)
		# class cleanups run even when setUpClass fails half-way
		cls.pixels = PixelServer()
		cls.addClassCleanup(cls.pixels.close)
		run = frappe.generate_hash(length=8)
		cls.channel = make_channel(f"browser {run}", forward_as_new_ticket=1)
		cls.addClassCleanup(remove_channel_rows, cls.channel.name)
		cls.hostile = []
		for index, payload in enumerate(PAYLOADS):
			for shape in ("plain", "encoded"):
				result = ingest_raw(cls.channel, hostile_mail(index, payload, shape, run), "test")
				assert result.outcome == "stored", result
				cls.hostile.append(result.ticket)
		cls.pixel_url = f"{cls.pixels.url}/pixel.gif?run={run}"
		result = ingest_raw(cls.channel, html_mail(cls.pixel_url, run), "test")
		assert result.outcome == "stored", result
		cls.html_ticket = result.ticket
		desk_user(AGENT, "Support Agent")
		update_password(AGENT, PASSWORD)
		cls.inbox_tickets(run)
		frappe.db.commit()  # the served site is another process
		site = served_site()
		cls.base = site.__enter__()
		cls.addClassCleanup(site.__exit__, None, None, None)

	@classmethod
	def inbox_tickets(cls, run: str):
		"""Two clients' tickets with one subject (one waits, one was answered), the first
		assigned to the agent; and one found by a word of its message, markup and all."""
		today = format_datetime(datetime.now(timezone.utc))  # for the chart of the last month
		cls.waiting, cls.answered = (
			ingest_raw(
				cls.channel,
				mail(
					"Same subject",
					sender=f"{who}.{run}@example.org",
					message_id=f"{who}.{run}@example.org",
					date=today,
				).replace(b"From: Client", f"From: {name}".encode()),
				"test",
			).ticket
			for who, name in (("anna", "Anna Ivanova"), ("boris", "Boris Petrov"))
		)
		frappe.db.set_value("Ticket", cls.answered, {"status": "Replied", "waiting_since": None})
		assign_to.add(
			{"assign_to": [AGENT], "doctype": "Ticket", "name": cls.waiting}, ignore_permissions=True
		)
		cls.marker = f"zq{run}word"
		cls.found = ingest_raw(
			cls.channel,
			mail("Searched", message_id=f"search.{run}@example.org", body=f"{cls.marker} {PAYLOADS[0]}"),
			"test",
		).ticket
		index_queued()  # the search index job, which a worker runs (none runs beside the tests)

	# --- the browser

	def start_browser(self):
		driver = chromium(self.addCleanup)
		driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOKS})
		return driver

	def assert_no_script_ran(self, driver, where: str):
		state = driver.execute_script(FIND_MARKUP)
		self.assertEqual(state["xss"], 0, f"{where}: a script ran: {state['log']}")
		self.assertEqual(state["markup"], [], f"{where}: payload markup in the page")

	def open_list(self, driver):
		driver.get(f"{self.base}/app/ticket?channel={quote(self.channel.name)}")
		count = len(self.hostile) + 1
		self.until_js(
			driver,
			"return window.cur_list && cur_list.doctype === 'Ticket' && !cur_list.list_view_settings_loading"
			" && document.querySelectorAll('.list-row-container').length >= arguments[0]",
			count,
		)

	def open_form(self, driver, ticket: str):
		driver.execute_script("frappe.set_route('Form', 'Ticket', arguments[0])", str(ticket))
		# the Forward button comes last: it waits for the channel's setting
		self.until_js(
			driver,
			"return window.cur_frm && cur_frm.doc.name == arguments[0] && !cur_frm.is_new()"
			" && cur_frm.timeline && cur_frm.timeline.timeline_wrapper.find('.timeline-message-box').length"
			" && cur_frm.custom_buttons[__('Reply')] && cur_frm.custom_buttons[__('Forward message')]"
			" && !$('.modal.show').length",
			str(ticket),
		)

	def open_dialog(self, driver, button: str, title: str):
		element = driver.execute_script(
			"window.scrollTo(0, 0); return cur_frm.custom_buttons[__(arguments[0])][0]", button
		)
		element.click()
		self.until_js(
			driver,
			"return window.cur_dialog && cur_dialog.$wrapper.hasClass('show')"
			" && cur_dialog.$wrapper.find('.modal-title').text().startsWith(arguments[0])"
			# the Reply dialog's preview of the quote: the mail's names and text, once loaded
			" && (arguments[0] != 'Reply to' || cur_dialog.$wrapper.find('.usedesk-closing').length)",
			title,
		)

	def close_dialog(self, driver):
		driver.execute_script("cur_dialog.hide()")
		self.until_js(driver, "return !$('.modal.show').length && !$('.modal-backdrop').length")

	def message_box(self, driver, marker: str):
		return driver.execute_script(
			"return [...document.querySelectorAll('.timeline-message-box')]"
			".find((box) => box.textContent.includes(arguments[0]))",
			marker,
		)

	# --- the tests

	def test_hostile_headers_run_no_script_for_an_agent(self):
		"""Every hostile ticket in the list, its form, Reply and Forward, as a Support Agent."""
		driver = self.start_browser()
		self.log_in(driver, AGENT, PASSWORD)
		self.open_list(driver)
		self.shot(driver, "agent-list")
		self.assert_no_script_ran(driver, "Ticket list")
		for ticket in self.hostile:
			with self.subTest(ticket=ticket):
				self.open_form(driver, ticket)
				self.assert_no_script_ran(driver, f"form {ticket}")
				files = driver.execute_script(
					"return [...document.querySelectorAll('.timeline-message-box a[href*=\"/files/\"]')]"
					".map((a) => a.textContent.trim())"
				)
				self.assertEqual(len(files), 1, "the attachment, under its own name")
				self.assertTrue(files[0].endswith(".pdf"), files)
				self.open_dialog(driver, "Reply", "Reply to")
				self.assert_no_script_ran(driver, f"Reply dialog {ticket}")
				self.close_dialog(driver)
				self.open_dialog(driver, "Forward message", "Forward message")
				self.assert_no_script_ran(driver, f"Forward dialog {ticket}")
				self.close_dialog(driver)
		self.shot(driver, "agent-hostile-form")
		self.shot(driver, "agent-hostile-timeline", self.message_box(driver, "Body"))
		self.assertEqual(self.logged_user(driver), [200, AGENT])
		self.assert_detector_fires(driver)

	def test_hostile_headers_run_no_script_for_administrator(self):
		"""The Administrator's desk shows more (all fields, all links): the list and every form."""
		driver = self.start_browser()
		with administrator_password() as password:
			self.log_in(driver, "Administrator", password)
		self.open_list(driver)
		self.assert_no_script_ran(driver, "Ticket list")
		for ticket in (*self.hostile, self.html_ticket):
			with self.subTest(ticket=ticket):
				self.open_form(driver, ticket)
				self.assert_no_script_ran(driver, f"form {ticket}")
		self.open_dialog(driver, "Reply", "Reply to")
		self.assert_no_script_ran(driver, "Reply dialog")
		self.close_dialog(driver)
		self.open_dialog(driver, "Forward message", "Forward message")
		self.assert_no_script_ran(driver, "Forward dialog")
		self.close_dialog(driver)
		self.assertEqual(self.logged_user(driver), [200, "Administrator"])
		self.assert_detector_fires(driver)

	def test_a_channels_real_time_health_shows_and_the_servers_words_run_nothing(self):
		"""The listener's state in the channel's list and form; error texts come from servers."""
		run = frappe.generate_hash(length=8)
		live, failing = (make_channel(f"browser {kind} {run}") for kind in ("live", "failing"))
		for channel in (live, failing):
			self.addCleanup(remove_channel_rows, channel.name)
		payload = PAYLOADS[0]
		listener = Listener()
		for channel in (live, failing):
			held = Held(channel.name, channel.modified)
			listener.write(held, live_state="Live", listener="vm:1:abc", listener_error=payload)
		record_failure(failing, AuthenticationError(f"IMAP 127.0.0.1:993: the server said {payload}"))
		frappe.db.commit()

		driver = self.start_browser()
		with administrator_password() as password:
			self.log_in(driver, "Administrator", password)
		driver.get(f"{self.base}/app/email-channel")
		indicators = self.until_js(
			driver,
			"const rows = [...document.querySelectorAll('.list-row-container')];"
			"const pick = (name) => rows.find((r) => r.textContent.includes(name));"
			"const a = pick(arguments[0]), b = pick(arguments[1]);"
			"return a && b && [a.querySelector('.indicator-pill').textContent.trim(),"
			" b.querySelector('.indicator-pill').textContent.trim()]",
			live.name,
			failing.name,
		)
		self.assertEqual(indicators, ["Live", "Failing"])
		self.shot(driver, "email-channel-list")
		self.assert_no_script_ran(driver, "Email Channel list")
		for channel, headline in ((live, "Real time: live (IMAP IDLE)"), (failing, "Failing (1)")):
			driver.execute_script("frappe.set_route('Form', 'Email Channel', arguments[0])", channel.name)
			self.until_js(
				driver,
				"return window.cur_frm && cur_frm.doc.name == arguments[0]"
				" && document.body.innerText.includes(arguments[1])",
				channel.name,
				headline,
			)
			shown = driver.execute_script("return cur_frm.fields_dict.listener_error.$wrapper[0].innerText")
			self.assertIn(payload, shown, "the error reads as the server wrote it")
			self.shot(driver, f"email-channel-{channel.name}")
			self.shot(
				driver,
				f"email-channel-{channel.name}-real-time",
				driver.execute_script("return cur_frm.fields_dict.listener_error.$wrapper[0]"),
			)
			self.assert_no_script_ran(driver, f"Email Channel form {channel.name}")
		self.assertIn(f"the server said {payload}", driver.execute_script("return document.body.innerText"))
		self.assert_detector_fires(driver)

	def assert_detector_fires(self, driver):
		"""The positive control: markup with a handler, injected as a payload would be, counts."""
		driver.execute_script(
			"document.body.insertAdjacentHTML('beforeend', '<img id=usedesk-control src=x onerror=alert(1)>')"
		)
		self.until_js(driver, "return window.__xss > 0", timeout=5)
		state = driver.execute_script(FIND_MARKUP)
		self.assertEqual(len(state["markup"]), 1, state)

	def test_html_mail_loads_nothing_by_itself_and_stays_in_its_box(self):
		"""Remote images wait for "Show images", the logout image is gone, the overlay is plain
		text in the timeline and the inline cid: image shows."""
		driver = self.start_browser()
		self.log_in(driver, AGENT, PASSWORD)
		driver.get(f"{self.base}/app/ticket/{self.html_ticket}")
		self.until_js(
			driver,
			"return window.cur_frm && cur_frm.doc.name == arguments[0]"
			" && cur_frm.timeline && $('.timeline-message-box .content img').length",
			str(self.html_ticket),
		)
		box = self.message_box(driver, "Mail body marker")
		self.assertIsNotNone(box, "the HTML message in the timeline")
		inline = box.find_element("css selector", "img[alt='inline logo']")
		self.wait(driver, lambda d: d.execute_script("return arguments[0].complete", inline))
		self.assertEqual(
			driver.execute_script("return arguments[0].naturalWidth", inline),
			40,
			driver.execute_async_script(
				"const done = arguments[1]; fetch(arguments[0].src).then((r) => done([arguments[0].src, r.status]))",
				inline,
			),
		)
		self.shot(driver, "html-form", box)
		self.assertEqual(self.pixels.requests, [], "the remote image was fetched before Show images")
		self.assertEqual(driver.execute_script(OUT_OF_PLACE, box), [])
		self.assertIn("Your session expired", box.text, "the overlay's text stays, as text")
		self.assertEqual(self.logged_user(driver), [200, AGENT], "the logout image logged the agent out")

		self.open_dialog(driver, "Reply", "Reply to")
		self.shot(driver, "html-reply-dialog")
		self.close_dialog(driver)

		buttons = box.find_elements("css selector", ".usedesk-show-images")
		self.assertEqual(len(buttons), 1, "one Show images on the message with a remote image")
		self.assertEqual(buttons[0].text, "Show images")
		buttons[0].click()
		pixel = box.find_element("css selector", "img[alt='tracking pixel']")
		self.wait(driver, lambda d: d.execute_script("return arguments[0].complete", pixel))
		self.assertEqual(driver.execute_script("return arguments[0].naturalWidth", pixel), 1)
		self.assertEqual(len(self.pixels.requests), 1, self.pixels.requests)
		self.assertEqual(self.pixels.requests[0], self.pixel_url.removeprefix(self.pixels.url))
		self.assertEqual(box.find_elements("css selector", ".usedesk-show-images"), [])
		self.shot(driver, "html-after-show-images", box)
		self.assertEqual(driver.execute_script(OUT_OF_PLACE, box), [])
		self.assert_no_script_ran(driver, "HTML ticket")
		self.assertEqual(self.logged_user(driver), [200, AGENT])

	def test_no_show_images_without_remote_images(self):
		"""A message with no remote image offers nothing to show."""
		driver = self.start_browser()
		self.log_in(driver, AGENT, PASSWORD)
		driver.get(f"{self.base}/app/ticket/{self.hostile[0]}")
		self.until_js(
			driver,
			"return window.cur_frm && cur_frm.doc.name == arguments[0] && $('.timeline-message-box').length",
			str(self.hostile[0]),
		)
		self.assertEqual(driver.find_elements("css selector", ".usedesk-show-images"), [])

	# --- the agent's inbox: workspace, list and search, on a desktop and a 390 px phone

	def desk(self, size: str):
		"""A browser of that size with the agent logged in."""
		driver = self.start_browser()
		if size == "phone":
			as_phone(driver)
		self.log_in(driver, AGENT, PASSWORD)
		return driver

	def test_an_agent_lands_on_the_helpdesk_workspace_with_counts_and_the_chart(self):
		frappe.set_user(AGENT)
		try:
			expected = {
				"My open tickets": f"{len(frappe.get_list('Ticket', filters=own_view(AGENT), pluck='name'))} open",
				"Waiting for us": f"{frappe.db.count('Ticket', {'waiting_since': ('is', 'set')})} waiting",
				"All tickets": f"{frappe.db.count('Ticket')} in all",
			}
		finally:
			frappe.set_user("Administrator")
		for size in ("desktop", "phone"):
			with self.subTest(size=size):
				driver = self.desk(size)
				driver.get(f"{self.base}/app")
				self.until_js(
					driver,
					"return frappe.get_route().join('/') === 'Workspaces/Helpdesk'"
					" && $('.shortcut-widget-box .indicator-pill').length >= 4",
				)
				# the chart is drawn empty first, then with its data: today's tickets lift "Opened"
				self.until_js(
					driver,
					"const path = document.querySelector('.dashboard-widget-box .dataset-0 .line-graph-path');"
					"const ys = [...(path?.getAttribute('d') || '').matchAll(/[ML][\\d.]+,([\\d.]+)/g)];"
					"return new Set(ys.map((m) => m[1])).size > 1",
				)
				shortcuts = dict(
					driver.execute_script(
						"return [...document.querySelectorAll('.shortcut-widget-box')].map((w) =>"
						" [w.querySelector('.widget-title').innerText.trim(),"
						" w.querySelector('.indicator-pill').innerText.trim()])"
					)
				)
				self.assertEqual({k: shortcuts.get(k) for k in expected}, expected)
				self.assertIn("Unassigned", shortcuts)
				self.assertNotIn("Failing channels", shortcuts, "an agent may not read channels")
				legend = driver.execute_script("return $('.dashboard-widget-box').text()")
				self.assertIn("Opened", legend)
				self.assertIn("Answered", legend)
				self.shot(driver, f"workspace-agent-{size}")
				self.assertEqual(
					driver.execute_script("return document.scrollingElement.scrollWidth <= innerWidth"), True
				)
				self.assert_no_script_ran(driver, f"workspace, {size}")

	def test_the_ticket_list_shows_the_client_and_who_waits(self):
		rows_js = """
		return Object.fromEntries([...document.querySelectorAll('.list-row-container')].map((row) => {
			const link = row.querySelector('.list-subject a[data-name]');
			const pill = [...row.querySelectorAll('.indicator-pill')].find((p) => p.offsetParent);
			return [link.dataset.name, {
				text: row.innerText.replace(/\\s+/g, ' ').trim(),
				subject: link.innerText.trim(),
				bold: !!link.closest('.bold'),
				pill: pill ? [pill.innerText.trim(), [...pill.classList].filter((c) => ['red', 'orange', 'blue', 'green', 'gray'].includes(c))] : null,
			}];
		}));
		"""
		for size in ("desktop", "phone"):
			with self.subTest(size=size):
				driver = self.desk(size)
				driver.get(f"{self.base}/app/ticket?subject={quote('Same subject')}")
				self.until_js(
					driver,
					"return window.cur_list && cur_list.doctype === 'Ticket' && !cur_list.list_view_settings_loading"
					" && [arguments[0], arguments[1]].every((name) => document.querySelector("
					"`.list-row-container a[data-name='${name}']`))",
					str(self.waiting),
					str(self.answered),
				)
				rows = driver.execute_script(rows_js)
				waiting, answered = rows[str(self.waiting)], rows[str(self.answered)]
				self.assertTrue(waiting["bold"], "the client waits: bold")
				self.assertFalse(answered["bold"])
				self.assertEqual(waiting["pill"], ["Open", ["red"]])
				self.assertEqual(answered["pill"], ["Replied", ["blue"]])
				if size == "desktop":
					head = driver.execute_script("return $('.list-row-head').text()")
					self.assertIn("Client E-mail", head)
					self.assertIn("Last Client Message", head)
					self.assertIn("Anna Ivanova", waiting["text"])
					self.assertIn("anna.", waiting["text"])
					self.assertEqual(waiting["subject"], "Same subject")
					self.assertEqual(driver.execute_script("return cur_list.sort_by"), "modified")
				else:
					self.assertEqual(waiting["subject"], "Anna Ivanova · Same subject")
					self.assertEqual(answered["subject"], "Boris Petrov · Same subject")
				self.shot(driver, f"list-agent-{size}")
				self.assert_no_script_ran(driver, f"Ticket list, {size}")

	def test_the_awesome_bar_finds_the_helpdesk_the_tickets_and_a_ticket_by_its_words(self):
		from selenium.common.exceptions import StaleElementReferenceException
		from selenium.webdriver.common.by import By

		driver = self.desk("desktop")
		driver.get(f"{self.base}/app/helpdesk")
		self.until_js(driver, "return frappe.get_route().join('/') === 'Workspaces/Helpdesk'")

		def offered(text: str, wanted: str) -> None:
			box = driver.find_element(By.ID, "navbar-search")
			box.clear()
			box.send_keys(text)
			find = (
				"return [...document.querySelectorAll('.search-bar [role=listbox] li')]"
				".find((li) => li.innerText.trim().startsWith(arguments[0]))"
			)
			self.until_js(driver, find, wanted)
			self.shot(driver, f"awesome-bar-{text[:12]}")

			def click(d) -> bool:  # the list is drawn again as more results come
				try:
					d.execute_script(find, wanted).click()
					return True
				except StaleElementReferenceException:
					return False

			self.wait(driver, click)

		offered("helpdesk", "Open Helpdesk")
		self.until_js(driver, "return frappe.get_route().join('/') === 'Workspaces/Helpdesk'")
		offered("tickets", "Report Tickets")
		self.until_js(
			driver,
			"return frappe.get_route().join('/') === 'List/Ticket/Report/Tickets'"
			" && window.cur_list && cur_list.report_doc && $('.dt-row').length > 2",
		)
		self.assertEqual(
			driver.execute_script("return $('.page-head .indicator-pill:visible').text().trim()"),
			"",
			"the shipped report is shown as saved",
		)
		self.shot(driver, "report-tickets")
		offered(self.marker, "Search for")
		result = self.until_js(
			driver,
			"return [...document.querySelectorAll('.search-dialog .result')]"
			".find((r) => r.innerText.includes(arguments[0]))",
			self.marker,
		)
		# innerText, not Selenium's .text: that is empty while the dialog still fades in
		text = driver.execute_script("return arguments[0].innerText", result)
		self.assertIn(str(self.found), text)
		self.assertIn(PAYLOADS[0], text, "the mail's markup, shown as text")
		self.shot(driver, "global-search-result")
		self.assert_no_script_ran(driver, "global search")


class TestAgentAccess(FrappeTestCase):
	"""What the browser tests found an agent lacking, checked without a browser."""

	def test_an_agent_reads_a_tickets_mail_files_and_its_channels_forward_setting(self):
		channel = make_channel(f"access {frappe.generate_hash(length=6)}", forward_as_new_ticket=1)
		self.addCleanup(remove_channel_rows, channel.name)
		result = ingest_raw(channel, hostile_mail(0, "plain name", "plain", channel.name), "test")
		file = frappe.get_doc("File", {"attached_to_name": result.communication})
		self.assertTrue(file.is_private)
		desk_user(AGENT, "Support Agent")
		frappe.set_user(AGENT)
		self.addCleanup(frappe.set_user, "Administrator")
		self.assertTrue(file.is_downloadable(), "the agent may open the mail's attachment")
		self.assertTrue(ticket_context(result.ticket)["can_forward"])
		self.assertFalse(frappe.has_permission("Email Channel", "read"))
		other = frappe.get_doc(
			{
				"doctype": "Communication",
				"subject": "not a ticket's",
				"reference_doctype": "Email Channel",
				"reference_name": channel.name,
			}
		).insert(ignore_permissions=True)
		self.assertFalse(
			frappe.has_permission("Communication", "read", doc=other),
			"only Communications of what the agent may read",
		)
		frappe.set_user("Administrator")  # made by someone else: Frappe lets owners read their own
		loose = frappe.get_doc({"doctype": "Communication", "subject": "belongs to nothing"}).insert(
			ignore_permissions=True
		)
		frappe.set_user(AGENT)
		self.assertFalse(frappe.has_permission("Communication", "read", doc=loose), "nor one of nothing")
