"""The allow-list HTML sanitiser: hostile markup goes, ordinary mail formatting stays."""

from html.parser import HTMLParser

import pytest

from usedesk_email.mail.sanitize import safe_style, safe_url, sanitise_html

_URL_ATTRS = {"href", "src", "cite", "background", "action", "formaction", "srcset", "data", "xlink:href"}


class _Elements(HTMLParser):
	"""What a browser would build from the output: tags and their attributes."""

	def __init__(self, html: str) -> None:
		super().__init__(convert_charrefs=True)
		self.tags: list[tuple[str, dict[str, str]]] = []
		self.feed(html)
		self.close()

	def handle_starttag(self, tag, attrs):
		self.tags.append((tag, {k: v or "" for k, v in attrs}))


@pytest.mark.parametrize(
	"html",
	[
		"<script>alert(1)</script>",
		"<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
		"<img src=x onerror=alert(1)>",
		'<a href="javascript:alert(1)">x</a>',
		'<a href="JaVaScRiPt:alert(1)">x</a>',
		'<a href="java\nscript:alert(1)">x</a>',
		'<a href="&#x6A;avascript:alert(1)">x</a>',
		'<a href="javascript&colon;alert(1)">x</a>',
		'<a href="\x01javascript:alert(1)">x</a>',
		'<a href="vbscript:msgbox(1)">x</a>',
		'<a href="data:text/html,<script>alert(1)</script>">x</a>',
		'<img src="data:image/svg+xml,<svg onload=alert(1)>">',
		'<iframe src="javascript:alert(1)"></iframe>',
		"<svg><script>alert(1)</script></svg>",
		"<svg/onload=alert(1)>",
		"<math><a xlink:href=javascript:alert(1)>x</a></math>",
		'<div style="width:expression(alert(1))">x</div>',
		'<div style="background:url(javascript:alert(1))">x</div>',
		'<div style="background:u\\72l(javascript:alert(1))">x</div>',
		"<style>@import 'javascript:alert(1)';</style>",
		'<object data="javascript:alert(1)"></object>',
		'<embed src="javascript:alert(1)">',
		'<form action="javascript:alert(1)"><input onfocus=alert(1) autofocus></form>',
		'<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
		'<base href="javascript:alert(1)//">',
		'<body onload="alert(1)">x</body>',
		'<details open ontoggle="alert(1)">x</details>',
		'<a href="#" onmouseover="alert(1)">x</a>',
		"<!--<script>alert(1)</script>-->",
		"<![CDATA[<script>alert(1)</script>]]>",
		'<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
		'<img src="x" srcset="javascript:alert(1)">',
		'<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
		"<scr<script>ipt>alert(1)</script>",
		'<a href="https://ok.example" style="position:fixed;top:0">x</a>',
	],
)
def test_hostile_markup_loses_its_teeth(html):
	out = sanitise_html(html)
	dangerous = {
		"script",
		"iframe",
		"svg",
		"math",
		"object",
		"embed",
		"form",
		"input",
		"meta",
		"base",
		"style",
	}
	for tag, attrs in _Elements(out).tags:
		assert tag not in dangerous, out
		for name, value in attrs.items():
			assert not name.startswith("on"), out
			if name in _URL_ATTRS:
				assert (
					not value.lower()
					.lstrip()
					.startswith(("javascript", "vbscript", "data:text", "data:image/svg"))
				), out
			if name == "style":
				assert not any(w in value.lower() for w in ("expression", "url(", "position", "\\")), out
	assert "<script" not in out.lower()


def test_ordinary_formatting_survives():
	html = (
		'<div dir="ltr" class="gmail_quote" id="divRplyFwdMsg"><p align="center"><b>Bold</b>, <i>it</i>,'
		' <u>u</u>, <font color="#ff0000" face="Arial">font</font></p>'
		'<blockquote type="cite" style="border-left:1px solid #ccc;padding-left:1ex">quoted</blockquote>'
		'<table border="1" cellpadding="2"><tr><th colspan="2">h</th></tr><tr><td>a</td><td>b</td></tr></table>'
		'<ul><li>one</li></ul><ol start="3"><li>three</li></ol><pre>code  block</pre><hr>'
		'<a href="https://example.com/?a=1&amp;b=2" title="t">link</a> <a href="mailto:a@b.example">mail</a>'
		' <a href="tel:+123">tel</a> <a href="#top">anchor</a>'
		'<img src="cid:image001.png@01D" alt="logo" width="20" height="10"><img src="https://example.com/i.png">'
		"<h1>H1</h1><span>span</span><br></div>"
	)
	assert sanitise_html(html) == html.replace("<hr>", "<hr>")


def test_style_block_content_is_dropped_not_shown():
	assert sanitise_html("<style>p { color: red }</style><p>text</p>") == "<p>text</p>"


def test_text_is_re_escaped():
	assert sanitise_html("<p>1 &lt; 2 &amp; 3 &gt; 2</p>") == "<p>1 &lt; 2 &amp; 3 &gt; 2</p>"
	assert sanitise_html("a < b") == "a &lt; b"


def test_attribute_values_are_re_escaped():
	out = sanitise_html('<p title="&quot;&gt;&lt;script&gt;x">t</p>')
	assert out == '<p title="&quot;&gt;&lt;script&gt;x">t</p>'


def test_unclosed_tags_are_closed_and_stray_end_tags_dropped():
	assert sanitise_html("<div><b>bold<a href='https://x.example'>link") == (
		'<div><b>bold<a href="https://x.example">link</a></b></div>'
	)
	assert sanitise_html("</div></b>text</p>") == "text"


def test_unknown_wrappers_vanish_but_their_text_stays():
	assert (
		sanitise_html("<html><body><o:p>word</o:p><center>c</center></body></html>")
		== "word<center>c</center>"
	)


def test_unclosed_comment_does_not_eat_the_page():
	assert "&lt;!--" in sanitise_html("<p>before</p><!-- never closed")


def test_empty_input():
	assert sanitise_html("") == ""


@pytest.mark.parametrize(
	"url, expected",
	[
		("https://example.com/a", "https://example.com/a"),
		(" http://example.com ", "http://example.com"),
		("mailto:x@example.com", "mailto:x@example.com"),
		("cid:abc@def", "cid:abc@def"),
		("/relative/path", "/relative/path"),
		("#anchor", "#anchor"),
		("//cdn.example/x.png", "//cdn.example/x.png"),
		("javascript:alert(1)", None),
		("\tjavascript:alert(1)", None),
		("j\na\tv\ra\x00script:alert(1)", None),
		("file:///etc/passwd", None),
		("data:text/html,x", None),
		("\ufffdjavascript:x", None),
	],
)
def test_safe_url(url, expected):
	assert safe_url(url, "a") == expected


def test_data_images_only_in_img():
	assert safe_url("data:image/png;base64,AAAA", "img") == "data:image/png;base64,AAAA"
	assert safe_url("data:image/png;base64,AAAA", "a") is None


def test_safe_style_keeps_harmless_declarations():
	assert safe_style("color: red; width: expression(x); font-size:12pt") == "color:red;font-size:12pt"
	assert safe_style("background:url(https://x)") == ""
	assert safe_style("color:red/**/;x:y") == "x:y"
