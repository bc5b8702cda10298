"""The allow-list HTML sanitiser: hostile markup goes, ordinary mail formatting stays."""

import re
from html.parser import HTMLParser

import pytest

from usedesk_email.mail.sanitize import MAX_DEPTH, MAX_INDENT_DEPTH, safe_style, safe_url, sanitise_html

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
	expected = (
		html.replace('title="t">', 'title="t" target="_blank" rel="noopener noreferrer">')
		.replace('example">mail', 'example" target="_blank" rel="noopener noreferrer">mail')
		.replace('+123">tel', '+123" target="_blank" rel="noopener noreferrer">tel')
		.replace('<a href="#top">anchor', "<a>anchor")  # relative: could act on the desk
		.replace('<img src="https://example.com/i.png">', '<img data-remote-src="https://example.com/i.png">')
	)
	assert sanitise_html(html) == expected


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
		'<div><b>bold<a href="https://x.example" target="_blank" rel="noopener noreferrer">link</a></b></div>'
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
		("/relative/path", None),
		("/api/method/logout", None),
		("../private/files/x.png", None),
		("#anchor", None),
		("x", None),
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
	assert safe_style("color:red/**/;x:y;font-weight:bold") == "font-weight:bold"


# --- The mail view never reaches outside the mail -----------------------------------------


@pytest.mark.parametrize(
	"html",
	[
		'<div class="modal-backdrop fade show">Session expired</div>',
		'<div class="modal show" style="display:block">Log in again</div>',
		'<div class="navbar fixed-top">x</div>',
		'<div class="page-container layout-main">x</div>',
		'<button class="btn btn-primary">x</button>',
		'<div id="body">x</div>',
		'<div id="page-login" class="for-login">x</div>',
		'<span class="usedesk-quoted">fake toggle</span>',
		'<p class="GMAIL_QUOTE indicator-pill red">x</p>',
	],
)
def test_desk_classes_and_ids_go(html):
	for _tag, attrs in _Elements(sanitise_html(html)).tags:
		assert set(attrs.get("class", "").lower().split()) <= {"gmail_quote"}, attrs
		assert "id" not in attrs, attrs


def test_quote_markers_stay_for_the_splitter():
	out = sanitise_html(
		'<div class="gmail_quote modal"><div class="gmail_attr x">On ... wrote:</div>'
		'<div id="x_divRplyFwdMsg">From:</div><div id="mail-editor-reference-message-container">y</div>'
		'<div class="moz-cite-prefix btn">z</div></div>'
	)
	assert out == (
		'<div class="gmail_quote"><div class="gmail_attr">On ... wrote:</div>'
		'<div id="x_divRplyFwdMsg">From:</div><div id="mail-editor-reference-message-container">y</div>'
		'<div class="moz-cite-prefix">z</div></div>'
	)


@pytest.mark.parametrize(
	"style",
	[
		"position:fixed;top:0;left:0",
		"position : absolute",
		"POSITION:FIXED",
		"z-index:99999",
		"top:0",
		"inset:0",
		"transform:translate(-100px,-100px)",
		"translate:0 -500px",
		"margin-top:-500px",
		"margin:0 0 0 -2000px",
		"margin: -.5in",
		"width:100vw",
		"height:100vh",
		"min-height:100vmax",
		"display:contents",
		"background-image:url(https://tracker.example/p.gif)",
		"background:image-set('https://tracker.example/p.gif' 1x)",
		"background:-webkit-image-set(url(//t.example/p) 1x)",
		"list-style:url(https://t.example/p)",
		"cursor:url(https://t.example/c),auto",
		"content:'x'",
		"width:calc(100% + 500px)",
		"width:var(--x)",
		"font-family:x;@import 'https://t.example/a.css'",
		"behavior:url(x.htc)",
		"color:re\\64",
	],
)
def test_styles_cannot_position_transform_or_load(style):
	out = sanitise_html(f'<div style="{style}">x</div>')
	for _tag, attrs in _Elements(out).tags:
		kept = attrs.get("style", "").lower()
		for bad in ("position", "z-index", "top", "inset", "transform", "translate", "vw", "vh", "@"):
			assert bad not in kept, out
		assert not re.search(r"-\s*[\d.]", kept), out
		assert "(" not in kept or kept.startswith(("color:rgb", "background-color:rgb")), out


def test_ordinary_styles_stay():
	style = (
		"color:#333;background-color:rgb(255, 255, 255);font-family:Arial, sans-serif;font-size:14px;"
		"padding:0 10px;margin:0 0 1em;border-left:1px solid #ccc;width:600px;text-align:center"
	)
	assert safe_style(style) == style.replace(": ", ":")


@pytest.mark.parametrize(
	"src",
	[
		"/api/method/logout",
		"api/method/logout",
		"./api/method/logout",
		"../../api/method/logout",
		"/private/files/secret.png",
		"/\\evil.example/x.png",
		"\\\\evil.example\\x.png",
		" /app/user ",
		"?cmd=logout",
		"#x",
	],
)
def test_relative_sources_and_links_are_dropped(src):
	out = sanitise_html(f'<img src="{src}" alt="a"><a href="{src}">link</a>')
	assert "logout" not in out and "evil" not in out and "private" not in out and "app/user" not in out
	assert "link" in out


@pytest.mark.parametrize(
	"src",
	[
		"https://tracker.example/open.gif?id=1",
		"http://tracker.example/open.gif",
		"HTTPS://TRACKER.EXAMPLE/P.GIF",
		"//tracker.example/p.gif",
		" https://tracker.example/p.gif",
		"ftp://tracker.example/p.gif",
	],
)
def test_remote_images_wait_for_show_images(src):
	out = sanitise_html(f'<p>hi<img src="{src}" width="1" height="1"></p>')
	(img,) = [attrs for tag, attrs in _Elements(out).tags if tag == "img"]
	assert "src" not in img
	assert img["data-remote-src"] == src.strip()
	# quoted into a letter, the reader's client decides: the address is back in src
	letter = sanitise_html(out, load_images=True)
	(img,) = [attrs for tag, attrs in _Elements(letter).tags if tag == "img"]
	assert img["src"] == src.strip() and "data-remote-src" not in img


def test_inline_images_load_at_once():
	out = sanitise_html('<img src="cid:logo@x"><img src="data:image/png;base64,AAAA">')
	assert [a.get("src") for _t, a in _Elements(out).tags] == ["cid:logo@x", "data:image/png;base64,AAAA"]


def test_mail_cannot_plant_its_own_remote_source():
	out = sanitise_html('<img data-remote-src="/api/method/logout" src="cid:x"><p data-x="1">t</p>')
	assert "logout" not in out and "data-x" not in out


# --- Malformed markup keeps its text ----------------------------------------------------------


@pytest.mark.parametrize(
	"html",
	[
		"<p>before</p><svg><circle r=1>",
		"<p>before</p><svg width=10>",
		"<p>before</p><math><mi>x",
		"<p>before</p><object data=x>",
		"<p>before</p><select><option>",
		"<p>before</p><form><input>",
		"<p>before</p><applet>",
		"<p>before</p><svg><svg><svg>",
	],
)
def test_unclosed_foreign_elements_keep_the_text_after_them(html):
	out = sanitise_html(html + "<p>after the element</p>")
	assert "before" in out and "after the element" in out
	assert "<svg" not in out and "<math" not in out and "<object" not in out


def test_code_inside_unwrapped_elements_still_goes():
	out = sanitise_html("<svg><script>alert(1)</script><style>*{}</style><text>kept</text></svg>")
	assert out == "kept"


@pytest.mark.parametrize("tag", ["div", "blockquote", "ul", "li", "table", "span", "b"])
def test_nesting_is_capped_and_the_text_kept(tag):
	depth = 5000
	html = f"<{tag}>level " * depth + "deepest"
	out = sanitise_html(html)
	assert out.count(f"<{tag}>") <= MAX_DEPTH
	assert out.count("level") == depth and "deepest" in out
	stack = max_open(out)
	assert stack <= MAX_DEPTH


def test_indenting_elements_have_a_lower_cap():
	out = sanitise_html("<blockquote><ul><li>x" * 1000)
	assert out.count("<blockquote>") + out.count("<ul>") + out.count("<li>") <= MAX_INDENT_DEPTH
	assert out.count("x") == 1000


def test_stray_end_tags_against_a_deep_stack_are_dropped():
	out = sanitise_html("<b>" * 3000 + "text" + "</i>" * 3000)
	assert out == "<b>" * MAX_DEPTH + "text" + "</b>" * MAX_DEPTH


def max_open(html: str) -> int:
	class Depth(HTMLParser):
		depth = deepest = 0

		def handle_starttag(self, tag, attrs):
			if tag not in ("br", "img", "hr", "wbr", "col"):
				self.depth += 1
				self.deepest = max(self.deepest, self.depth)

		def handle_endtag(self, tag):
			self.depth -= 1

	parser = Depth()
	parser.feed(html)
	return parser.deepest
