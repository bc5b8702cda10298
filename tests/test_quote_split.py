"""Quoted history in clients' replies, text and HTML, in each client's real layout."""

import time
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import pytest

from usedesk_email.mail.html_tokens import defuse, tokenize
from usedesk_email.mail.parse import parse_message
from usedesk_email.mail.quote_split import SplitReply, collapsed, expanded, split_html, split_text

EML = Path(__file__).parent / "eml"
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCKS = {"blockquote", "br", "div", "hr", "li", "p", "pre", "table", "td", "tr"}


def squash(text: str) -> str:
	return "".join(text.split())


def check_text(text: str) -> SplitReply:
	"""Split, and check that nothing was lost or invented."""
	reply = split_text(text)
	assert text.startswith(reply.new) and text.endswith(reply.quoted)
	assert squash(reply.new + reply.quoted) == squash(text)
	return reply


class _Reader(HTMLParser):
	"""Visible text and tag balance of a fragment, read independently of the code under test."""

	def __init__(self) -> None:
		super().__init__()
		self.text: list[str] = []
		self.open: list[str] = []
		self.stray: list[str] = []
		self.hidden = 0

	def handle_starttag(self, tag, attrs):
		if tag in _BLOCKS:
			self.text.append(" ")
		if tag not in _VOID:
			self.open.append(tag)
			self.hidden += tag in ("style", "script", "head", "title")

	def handle_endtag(self, tag):
		if tag in _BLOCKS:
			self.text.append(" ")
		if self.open and self.open[-1] == tag:
			self.open.pop()
			self.hidden -= tag in ("style", "script", "head", "title")
		else:
			self.stray.append(tag)

	def handle_data(self, data):
		if not self.hidden:
			self.text.append(data)


def read(html: str, hostile: bool = False) -> _Reader:
	reader = _Reader()
	reader.feed(defuse(html) if hostile else html)
	reader.close()
	return reader


def visible(html: str, hostile: bool = False) -> str:
	return " ".join("".join(read(html, hostile).text).split())


def check_html(html: str, balanced: bool = True) -> SplitReply:
	"""Split, and check that each part renders alone and that no text was lost or invented."""
	reply = split_html(html)
	assert squash(visible(reply.new) + visible(reply.quoted)) == squash(visible(html))
	if balanced:
		for part in (reply.new, reply.quoted):
			reader = read(part)
			assert (reader.open, reader.stray) == ([], []), part
	return reply


# --- Plain text --------------------------------------------------------------------------

TEXT_CASES = {
	"gmail": (
		"Thanks, that fixed it.\n\nOn Tue, 3 Mar 2026 at 10:00, Support Team <support@example.com> wrote:\n\n"
		"> Hello,\n>\n> please restart the router.\n>\n",
		"Thanks, that fixed it.",
		"On Tue, 3 Mar 2026 at 10:00, Support Team <support@example.com> wrote:",
	),
	"gmail wrapped after the <": (
		"Thanks!\n\nOn Tue, 3 Mar 2026 at 10:00, Anna Karenina-Vronskaya, Customer Care Team <\n"
		"anna.karenina@example.com> wrote:\n\n> Hello\n",
		"Thanks!",
		"On Tue, 3 Mar 2026 at 10:00, Anna Karenina-Vronskaya",
	),
	"gmail wrapped before wrote": (
		"Ok\n\nOn Tue, Mar 3, 2026 at 10:00 AM Customer Care <care@example.com>\nwrote:\n\n> Hello\n",
		"Ok",
		"On Tue, Mar 3, 2026 at 10:00 AM",
	),
	"gmail in russian": (
		"Спасибо!\n\nвт, 3 мар. 2026 г. в 10:00, Служба поддержки <support@example.com>:\n\n> Здравствуйте!\n",
		"Спасибо!",
		"вт, 3 мар. 2026 г. в 10:00, Служба поддержки <support@example.com>:",
	),
	"gmail in german": (
		"Danke!\n\nAm Di., 3. März 2026 um 10:00 Uhr schrieb Support <support@example.com>:\n\n> Hallo\n",
		"Danke!",
		"Am Di., 3. März 2026 um 10:00 Uhr schrieb",
	),
	"outlook original message": (
		"Still broken.\r\n\r\nJohn\r\n\r\n-----Original Message-----\r\nFrom: Support <support@example.com> \r\n"
		"Sent: Tuesday, March 3, 2026 10:00 AM\r\nTo: John <john@client.example>\r\nSubject: Printer\r\n\r\nHello\r\n",
		"Still broken.\r\n\r\nJohn",
		"-----Original Message-----\r\nFrom: Support",
	),
	"outlook rule and header block": (
		"Still broken.\n\n________________________________\nFrom: Support <support@example.com>\n"
		"Sent: Tuesday, March 3, 2026 10:00\nTo: John <john@client.example>\nCc: boss@client.example\n"
		"Subject: Printer\n\nHello\n",
		"Still broken.",
		"________________________________\nFrom: Support",
	),
	"outlook header block through html2text": (
		"Still broken.\n\n**From:** Support <support@example.com>\n**Sent:** Tuesday, March 3, 2026 10:00 AM\n"
		"**To:** John <john@client.example>\n**Subject:** Printer\n\nHello\n",
		"Still broken.",
		"**From:** Support",
	),
	"outlook in russian": (
		"Счёт не пришёл.\n\nОт: Служба поддержки <support@example.com>\nОтправлено: 3 марта 2026 г. 10:00\n"
		"Кому: Ольга <olga@client.example>\nТема: Счёт\n\nЗдравствуйте\n",
		"Счёт не пришёл.",
		"От: Служба поддержки",
	),
	"outlook in german": (
		"Geht nicht.\n\nVon: Support <support@example.com>\nGesendet: Dienstag, 3. März 2026 10:00\n"
		"An: Jan <jan@client.example>\nBetreff: Drucker\n\nHallo\n",
		"Geht nicht.",
		"Von: Support",
	),
	"apple mail": (
		"Sounds good.\n\nSent from my iPhone\n\n> On 3 Mar 2026, at 10:00, Support <support@example.com> wrote:\n"
		"> \n> Hello\n",
		"Sounds good.\n\nSent from my iPhone",
		"> On 3 Mar 2026, at 10:00, Support <support@example.com> wrote:",
	),
	"apple mail in russian": (
		"Хорошо.\n\n> 3 марта 2026 г., в 10:00, Служба поддержки <support@example.com> написал(а):\n> \n> Привет\n",
		"Хорошо.",
		"> 3 марта 2026 г., в 10:00",
	),
	"thunderbird with a signature below the quote": (
		"Here it is.\n\nOn 03.03.2026 10:00, Support wrote:\n> Hello\n>\n> send the log\n\n-- \nPeter Novak\n",
		"Here it is.",
		"On 03.03.2026 10:00, Support wrote:",
	),
	"thunderbird in russian": (
		"Вот лог.\n\n03.03.2026 10:00, Служба поддержки пишет:\n> Пришлите лог\n",
		"Вот лог.",
		"03.03.2026 10:00, Служба поддержки пишет:",
	),
	"yandex": (
		'Спасибо!\n\n03.03.2026, 10:00, "Служба поддержки" <support@example.com>:\n> Здравствуйте\n',
		"Спасибо!",
		'03.03.2026, 10:00, "Служба поддержки" <support@example.com>:',
	),
	"mail.ru": (
		"Спасибо!\n\n\nВторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки <support@example.com>:\n"
		">Здравствуйте\n>\n>Служба поддержки\n",
		"Спасибо!",
		"Вторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки <support@example.com>:",
	),
	"mail.ru writes": (
		"Спасибо!\n \n \nВторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки <support@example.com> пишет:\n \n"
		">Здравствуйте\n",
		"Спасибо!",
		"Вторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки <support@example.com> пишет:",
	),
	"a trailing > block": ("I agree.\n\n> The price is 10.\n> Right?\n\n", "I agree.", "> The price is 10."),
	"a trailing > block under a short attribution": (
		"I agree.\n\nAnna wrote:\n> The price is 10.\n",
		"I agree.",
		"Anna wrote:",
	),
	"an attribution over an unprefixed quote": (
		"Fine.\n\nOn Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:\nHello,\nplease restart.\n",
		"Fine.",
		"On Tue, 3 Mar 2026 at 10:00, Support",
	),
	"a forwarded message": (
		"FYI\n\n---------- Forwarded message ---------\nFrom: A <a@example.com>\nDate: Tue, 3 Mar 2026 at 10:00\n"
		"Subject: X\nTo: <b@example.com>\n\nBody\n",
		"FYI",
		"---------- Forwarded message ---------",
	),
	"nothing new above the quote": (
		"On Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:\n> Hello\n",
		"",
		"On Tue, 3 Mar 2026",
	),
}


@pytest.mark.parametrize("text, new, quoted_start", TEXT_CASES.values(), ids=TEXT_CASES.keys())
def test_split_text_of_each_layout(text, new, quoted_start):
	reply = check_text(text)
	assert reply.new == new
	assert reply.quoted.startswith(quoted_start)


UNSPLIT_TEXTS = {
	"wrote: inside the first line": "On Tue, 3 Mar 2026 at 10:00, my manager wrote: please call me back.",
	"an attribution with nothing after it": "On Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:\n\n",
	"wrote: without a date and time": "In 2019 my colleague wrote:\nWe will refund you.\n",
	"a lone > line inside the text": "Hi,\n> is it free?\nYes it is.\nBye\n",
	"answers between quoted lines": (
		"On Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:\n> Order number?\n12345\n"
		"> Address?\nMain street 1\n"
	),
	"bottom posting": (
		"On Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:\n> Which model?\n\nThe X200.\n"
	),
	"From: and To: in prose": "From: the warehouse, it left on Monday.\nTo: be honest, it is late.\nThanks\n",
	"a lone rule line": "Total\n______________________________\nAmount: 10\n",
	"an address ending a sentence": "Call me at 10:30 or write to anna@example.com:\nI am in all day.\n",
	"empty": "",
	"only whitespace": " \n\n\t\n",
}


@pytest.mark.parametrize("text", UNSPLIT_TEXTS.values(), ids=UNSPLIT_TEXTS.keys())
def test_split_text_leaves_text_without_quote_whole(text):
	assert check_text(text) == SplitReply(text, "")


def test_split_text_wants_a_string():
	with pytest.raises(TypeError):
		split_text(None)


# --- HTML --------------------------------------------------------------------------------

GMAIL_HTML = (
	'<div dir="ltr">Thanks!</div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">'
	'On Tue, 3 Mar 2026 at 10:00, Support &lt;<a href="mailto:support@example.com">support@example.com</a>&gt; wrote:'
	'<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);'
	'padding-left:1ex"><div dir="ltr">Hello</div></blockquote></div>'
)
OUTLOOK_DESKTOP_HTML = (
	'<html><head><style><!-- p.MsoNormal {margin:0cm;} --></style></head><body lang="EN-US">'
	'<div class="WordSection1"><p class="MsoNormal">Still broken.<o:p></o:p></p>'
	'<p class="MsoNormal"><o:p>&nbsp;</o:p></p><div><div style="border:none;border-top:solid #E1E1E1 1.0pt;'
	'padding:3.0pt 0cm 0cm 0cm"><p class="MsoNormal"><b>From:</b> Support &lt;support@example.com&gt;<br>'
	"<b>Sent:</b> Tuesday, March 3, 2026 10:00 AM<br><b>To:</b> John<br><b>Subject:</b> Printer<o:p></o:p></p>"
	'</div></div><p class="MsoNormal">Hello<o:p></o:p></p></div></body></html>'
)
OUTLOOK_WEB_RU_HTML = (
	'<div class="elementToProof">Счёт не пришёл.</div><div id="appendonsend"></div>'
	'<hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr">'
	'<font face="Calibri, sans-serif" style="font-size:11pt" color="#000000"><b>От:</b> Служба поддержки '
	"&lt;support@example.com&gt;<br><b>Отправлено:</b> 3 марта 2026 г. 10:00<br><b>Кому:</b> Ольга<br>"
	'<b>Тема:</b> Счёт</font><div>&nbsp;</div></div><div><div dir="ltr">Здравствуйте</div></div>'
)
HTML_CASES = {
	"gmail": (GMAIL_HTML, "Thanks!", "On Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:"),
	"gmail with its classes stripped": (
		GMAIL_HTML.replace(' class="gmail_quote gmail_quote_container"', "")
		.replace(' class="gmail_attr"', "")
		.replace(' class="gmail_quote"', ""),
		"Thanks!",
		"On Tue, 3 Mar 2026 at 10:00, Support",
	),
	"outlook desktop": (OUTLOOK_DESKTOP_HTML, "Still broken.", "From: Support <support@example.com>"),
	"outlook desktop without its style": (
		OUTLOOK_DESKTOP_HTML.replace("border-top:solid #E1E1E1 1.0pt;", ""),
		"Still broken.",
		"From: Support",
	),
	"outlook on the web in russian": (OUTLOOK_WEB_RU_HTML, "Счёт не пришёл.", "От: Служба поддержки"),
	"outlook on the web without its ids": (
		OUTLOOK_WEB_RU_HTML.replace(' id="appendonsend"', "").replace(' id="divRplyFwdMsg"', ""),
		"Счёт не пришёл.",
		"От: Служба поддержки",
	),
	"outlook original message paragraph": (
		"<p>Still broken.</p><p>-----Original Message-----<br>From: Support<br>Sent: Tuesday, March 3, 2026<br>"
		"To: John<br>Subject: Printer</p><p>Hello</p>",
		"Still broken.",
		"-----Original Message-----",
	),
	"apple mail": (
		'Sounds good.<div><br></div><div>Anna<br id="lineBreakAtBeginningOfMessage"><div><br>'
		'<blockquote type="cite"><div>On 3 Mar 2026, at 10:00, Support &lt;support@example.com&gt; wrote:</div>'
		'<br class="Apple-interchange-newline"><div><div>Hello</div></div></blockquote></div><br></div>',
		"Sounds good. Anna",
		"On 3 Mar 2026, at 10:00, Support <support@example.com> wrote:",
	),
	"apple mail on ios": (
		'<div dir="ltr">Ok</div><div dir="ltr"><br><blockquote type="cite">On 3 Mar 2026, at 10:00, Support '
		'&lt;support@example.com&gt; wrote:<br><br></blockquote></div><blockquote type="cite"><div dir="ltr">'
		"Hello</div></blockquote>",
		"Ok",
		"On 3 Mar 2026, at 10:00",
	),
	"thunderbird with a signature below the quote": (
		'<html><body><p>Here it is.</p>\n<div class="moz-cite-prefix">On 03.03.2026 10:00, Support wrote:<br>\n'
		'</div>\n<blockquote type="cite"><div>Hello</div></blockquote>\n<pre class="moz-signature" cols="72">-- \n'
		"Peter Novak</pre></body></html>",
		"Here it is.",
		"On 03.03.2026 10:00, Support wrote:",
	),
	"yandex": (
		'<div>Спасибо!</div><div> </div><div>03.03.2026, 10:00, "Служба поддержки" &lt;support@example.com&gt;:'
		"</div><blockquote><div>Здравствуйте</div></blockquote>",
		"Спасибо!",
		'03.03.2026, 10:00, "Служба поддержки" <support@example.com>:',
	),
	"mail.ru": (
		"<HTML><BODY>Спасибо!<br><br><br>Вторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки "
		'&lt;<a href="mailto:support@example.com">support@example.com</a>&gt;:<br><blockquote style="border-left:1px '
		'solid #0857A6; margin:10px; padding:0 0 0 10px;"><div class="js-helper js-readmsg-msg"><div>Здравствуйте'
		"</div></div></blockquote></BODY></HTML>",
		"Спасибо!",
		"Вторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки <support@example.com>:",
	),
	"mail.ru with the attribution inside the quote": (
		'<div>Спасибо!</div><div class="mail-quote-collapse"><blockquote style="border-left:1px solid #0857A6">'
		"Вторник, 3 марта 2026, 10:00 +03:00 от Служба поддержки &lt;support@example.com&gt; пишет:<br>"
		"<div>Здравствуйте</div></blockquote></div>",
		"Спасибо!",
		"Вторник, 3 марта 2026, 10:00 +03:00",
	),
	"a trailing blockquote": (
		"<p>I agree.</p><blockquote><p>The price is 10.</p></blockquote><p><br></p>",
		"I agree.",
		"The price is 10.",
	),
	"text quoted with &gt; in a pre": (
		"<pre>Thanks\n\nOn Tue, 3 Mar 2026 at 10:00, Support &lt;support@example.com&gt; wrote:\n&gt; Hello\n"
		"&gt; World\n</pre>",
		"Thanks",
		"On Tue, 3 Mar 2026 at 10:00",
	),
}


@pytest.mark.parametrize("html, new, quoted_start", HTML_CASES.values(), ids=HTML_CASES.keys())
def test_split_html_of_each_layout(html, new, quoted_start):
	reply = check_html(html)
	assert visible(reply.new) == new
	assert visible(reply.quoted).startswith(quoted_start)


def test_split_html_closes_and_reopens_the_elements_around_the_split():
	reply = split_html(OUTLOOK_DESKTOP_HTML)
	assert reply.new.endswith("</div></body></html>")
	assert reply.quoted.startswith('<html><body lang="EN-US"><div class="WordSection1">')
	assert "<style>" in reply.new and "<style>" not in reply.quoted


def test_split_html_moves_blank_markup_before_the_quote_into_it():
	reply = split_html(GMAIL_HTML)
	assert reply.new == '<div dir="ltr">Thanks!</div>'
	assert reply.quoted.startswith('<br><div class="gmail_quote')


def test_split_html_with_implicitly_closed_paragraphs():
	html = "<p>Thanks<p>On Tue, 3 Mar 2026 at 10:00, Support &lt;s@example.com&gt; wrote:<blockquote>Hello</blockquote>"
	reply = check_html(html, balanced=False)
	assert visible(reply.new) == "Thanks"
	assert visible(reply.quoted).startswith("On Tue, 3 Mar 2026")


UNSPLIT_HTMLS = {
	"no quote": "<p>Hello</p><p>Is the order ready?</p>",
	"answers between quotes": "<div>About this:</div><blockquote>Is it free?</blockquote><div>Yes, it is free.</div>",
	"bottom posting": (
		'<div class="moz-cite-prefix">On 03.03.2026 10:00, Support wrote:<br></div>'
		'<blockquote type="cite">Which model?</blockquote><p>The X200.</p>'
	),
	"an attribution above normal text": (
		"<div>On Tue, 3 Mar 2026 at 10:00, Support &lt;s@example.com&gt; wrote:</div><div>Fine, thanks.</div>"
	),
	"outlook's marker with nothing after it": '<div>Hello</div><div id="appendonsend"></div>',
	"empty": "",
}


@pytest.mark.parametrize("html", UNSPLIT_HTMLS.values(), ids=UNSPLIT_HTMLS.keys())
def test_split_html_leaves_html_without_quote_whole(html):
	assert check_html(html) == SplitReply(html, "")


HOSTILE_HTML = [
	"<![foo]><p>a</p>",
	"<a<a<a<b>On Tue, 3 Mar 2026 at 10:00, A &lt;a@b.c&gt; wrote:<blockquote>x",
	"<!-- never closed <blockquote>q</blockquote>",
	"&#x;&#;&#xzz;<div>a</div><div>b</div>",
	"<script>if (a<b) {}</script><div>x</div><blockquote>y</blockquote>",
	"</div></blockquote></p>text<blockquote>q</blockquote>",
	'<a b=\'unclosed <div class="gmail_quote">q</div>',
	"<?pi <![CDATA[ <blockquote>",
]


@pytest.mark.parametrize("html", HOSTILE_HTML)
def test_split_html_of_hostile_markup_never_raises_nor_loses_text(html):
	reply = split_html(html)
	parts = visible(reply.new, hostile=True) + visible(reply.quoted, hostile=True)
	assert squash(parts) == squash(visible(html, hostile=True))
	tokens = tokenize(html)
	assert tokens[0].start == 0 and tokens[-1].end == len(html)
	assert all(a.end == b.start for a, b in pairwise(tokens))


def test_defuse_makes_the_standard_parser_total():
	hostile = "a<![foo]>b<![ x]>c&#x;d<a<e"
	with pytest.raises(AssertionError):
		HTMLParser().feed(hostile)
	reader = read(defuse(hostile))
	assert "".join(reader.text) == "a<![foo]>b<![ x]>c&#x;d<a<e"


def test_split_html_wants_a_string():
	with pytest.raises(TypeError):
		split_html(b"<p>x</p>")


# --- Speed: every rule is linear, whatever the input ------------------------------------

MB = 1_000_000


def megabyte(unit: str) -> str:
	return (unit * (MB // len(unit) + 1))[:MB]


HOSTILE_MEGABYTES = {
	"text: quoted lines": (split_text, megabyte("> quoted line\n")),
	"text: attributions": (split_text, megabyte("On Tue, 3 Mar 2026 at 10:00, A <a@b.c> wrote:\n\n")),
	"text: answers between quotes": (split_text, megabyte("> q\nanswer\n")),
	"text: header-like lines": (split_text, megabyte("From: a\nTo: b\n")),
	"text: date-first header lines": (split_text, megabyte("Date: 3 Mar 2026\nSent: 1\nFrom: a\n")),
	"text: wrapped attribution starts": (split_text, megabyte("On 3 Mar 2026 at 10:00, A\n")),
	"text: footer lines after a quote": (split_text, "> q\n" + megabyte("-- \nunsubscribe\n")),
	"text: one long line after a quote": (split_text, "> q\n" + "This email is " * (MB // 14)),
	"text: one long line": (split_text, "x" * MB + " wrote:"),
	"html: unterminated tags": (split_html, megabyte("<a")),
	"html: unterminated comments": (split_html, megabyte("<!-- > ")),
	"html: nested elements": (split_html, "<div>" * (MB // 5)),
	"html: a quote after a megabyte of breaks": (
		split_html,
		"<div>new</div>" + "<br>" * (MB // 4) + '<div class="gmail_quote">q</div>',
	),
}


@pytest.mark.parametrize("split, data", HOSTILE_MEGABYTES.values(), ids=HOSTILE_MEGABYTES.keys())
def test_a_hostile_megabyte_is_split_in_linear_time(split, data):
	started = time.monotonic()
	reply = split(data)
	# Linear work takes a few seconds at most even on a busy machine; quadratic work takes hours.
	assert time.monotonic() - started < 30
	assert len(reply.new) + len(reply.quoted) >= len(data) - 100


# --- The clients' replies of the .eml corpus, through the parser ------------------------

FIXTURES = {
	"reply_gmail.eml": (
		"Thanks, restarting the router fixed it.\nHave a nice day!",
		"On Mon, 3 Jun 2024 at 10:15, Support <support@example.com> wrote:",
	),
	"reply_outlook_en.eml": (
		"We still see the error after the driver update.\n\nRegards,\nJohn",
		"-----Original Message-----",
		"From: Support <support@example.com>",
	),
	"reply_outlook_ru.eml": (
		"Счёт так и не пришёл, проверьте, пожалуйста, адрес ещё раз.\n\nС уважением,\nОльга",
		"________________________________\nОт: Служба поддержки <support@example.com>",
		"От: Служба поддержки <support@example.com>",
	),
	"reply_apple.eml": (
		"Sounds good, see you on Friday at 10.\n\nAnna",
		"> On 5 Jun 2024, at 17:40, Support <support@example.com> wrote:",
		"On 5 Jun 2024, at 17:40, Support <support@example.com> wrote:",
	),
	"reply_thunderbird.eml": (
		"Thank you, the log is attached below:\n\nERROR 42: disk full",
		"On 06.06.2024 11:58, Support wrote:",
	),
	"reply_yandex.eml": (
		"Добрый день! Заказ получила, всё в порядке, спасибо.\n \n-- \nМария",
		'07.06.2024, 11:40, "Служба поддержки" <support@example.com> пишет:',
	),
	"reply_yandex_web.eml": (
		"А когда будет доставка?",
		'07.06.2024, 15:10, "Служба поддержки" <support@example.com>:',
	),
	"reply_mailru.eml": (
		"Пароль сбросил, теперь всё работает.\n \n--\nСергей",
		"Пт, 7 июня 2024, 19:00 +03:00, Служба поддержки <support@example.com> пишет:",
	),
}


@pytest.mark.parametrize("name", FIXTURES)
def test_replies_of_the_corpus_split_in_text_and_html(name):
	new, text_attribution, *html_attribution = FIXTURES[name]
	msg = parse_message((EML / name).read_bytes())
	text = check_text(msg.text)
	assert text.new == new
	assert text.quoted.startswith(text_attribution)
	html = check_html(msg.html)
	assert squash(visible(html.new)) == squash(new)
	assert visible(html.quoted).startswith((html_attribution or [text_attribution])[0])


QUOTES = sorted((EML / "quotes").glob("*.eml"))


@pytest.mark.parametrize("path", QUOTES, ids=[path.stem for path in QUOTES])
def test_labelled_replies_leave_the_expected_new_text(path):
	"""tests/eml/quotes: each letter's new text, as benchmarks/quote_split_quality.py measures it."""
	msg = parse_message(path.read_bytes())
	reply = check_html(msg.html) if msg.html else check_text(msg.text)
	expected = " ".join(path.with_suffix(".expected.txt").read_text(encoding="utf-8").split())
	assert visible(msg.new_html) == expected
	assert bool(reply.quoted) != path.stem.startswith("neg_")


# -- the split as stored for the timeline ---------------------------------------------------


def test_parse_gives_a_reply_split_into_new_html_and_quoted_html():
	msg = parse_message((EML / "reply_thunderbird.eml").read_bytes())
	assert msg.new_html and msg.quoted_html
	assert "Support wrote:" not in msg.new_html and "Support wrote:" in msg.quoted_html
	assert squash(visible(msg.new_html) + visible(msg.quoted_html)) == squash(visible(msg.html))


def test_text_only_mail_is_split_as_escaped_html():
	raw = (
		b"From: a@client.example\r\nSubject: Re: <b>\r\nMessage-ID: <t1@client.example>\r\n\r\n"
		b"Thanks, 2 < 3 & fine.\r\n\r\nOn 06.06.2024 11:58, Support wrote:\r\n> Hello\r\n> Peter\r\n"
	)
	msg = parse_message(raw)
	assert msg.html == ""
	assert msg.new_html == "Thanks, 2 &lt; 3 &amp; fine."
	assert msg.quoted_html == "On 06.06.2024 11:58, Support wrote:<br>\n&gt; Hello<br>\n&gt; Peter"


def test_mail_without_history_has_no_quoted_part():
	msg = parse_message((EML / "plain_ascii.eml").read_bytes())
	assert msg.new_html and msg.quoted_html == ""
	assert collapsed(msg.new_html, msg.quoted_html, "Quoted text") == msg.new_html


def test_collapsed_history_is_a_closed_details_and_expanded_gives_the_message_back():
	msg = parse_message((EML / "reply_gmail.eml").read_bytes())
	stored = collapsed(msg.new_html, msg.quoted_html, 'Quoted <text> & "more"')

	assert stored.startswith(msg.new_html)
	assert (
		'<details class="usedesk-quoted"><summary>Quoted &lt;text&gt; &amp; &quot;more&quot;</summary>'
		in stored
	)
	assert stored.endswith(msg.quoted_html + "</details>")
	assert "<details open" not in stored
	assert expanded(stored) == msg.new_html + msg.quoted_html
	assert expanded(msg.html) == msg.html, "HTML that was never collapsed comes back as it is"
	assert expanded('<p>a</p><details class="x"><summary>s</summary>b</details>').endswith("</details>")


def test_parts_of_gives_back_what_collapsed_joined():
	from usedesk_email.mail.quote_split import collapsed, parts_of

	assert parts_of(collapsed("<p>new</p>", "<blockquote>old</blockquote>", "Quoted")) == (
		"<p>new</p>",
		"<blockquote>old</blockquote>",
	)
	assert parts_of("<p>only new</p>") == ("<p>only new</p>", "")
