"""Tolerant decoding of bytes whose charset label may be wrong, misspelt or missing.

Mail from the wild names charsets the way its author's software felt like ("win-1251",
"utf8", "x-unknown"), or sends raw 8-bit bytes with no label at all. Decoding must never
raise: a known alias first, then UTF-8, then replacement characters, and the caller is
told (through `defects`) when text was repaired.
"""

import codecs
import re
from functools import lru_cache

# Labels Python does not know, or knows as a narrower charset than senders really use.
_ALIASES = {
	"iso-8859-1": "cp1252",  # what senders mean by it (smart quotes in 0x80-0x9f); see _western
	"latin1": "cp1252",
	"latin-1": "cp1252",
	"us-ascii": "utf-8",  # 8-bit bytes under an ascii label are nowadays UTF-8
	"ascii": "utf-8",
	"gb2312": "gb18030",
	"gbk": "gb18030",
	"ks_c_5601-1987": "cp949",
	"ks_c_5601": "cp949",
	"euc-kr": "cp949",
	"shift_jis": "cp932",
	"shift-jis": "cp932",
	"sjis": "cp932",
	"x-sjis": "cp932",
	"iso-8859-8-i": "iso8859-8",
	"tis-620": "cp874",
	"windows-874": "cp874",
	"koi8r": "koi8-r",
	"koi8u": "koi8-u",
	"x-mac-cyrillic": "mac-cyrillic",
	"macintosh": "mac-roman",
	"x-user-defined": "cp1252",
}
# Codecs that are "text encodings" to Python but would let a label change meaning.
_REFUSED = {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "mbcs", "oem"}
_WINDOWS = re.compile(r"^(?:x-)?(?:windows|win|cp|ms|ansi)[-_ ]?(\d{3,4})$")
_UTF8 = re.compile(r"^(?:x-)?(?:utf|unicode)[-_ ]?8\b")
_ISO = re.compile(r"^(?:x-)?iso[-_ ]?8859[-_ ]?(\d{1,2})\b")
_KOI = re.compile(r"^(?:x-)?koi[-_ ]?8[-_ ]?([ru])$")
# The five bytes cp1252 leaves undefined keep their Latin-1 meaning, as in browsers (WHATWG).
_CP1252_HIGH = {i: c for i in range(0x80, 0xA0) if (c := bytes([i]).decode("cp1252", "ignore"))}


@lru_cache(maxsize=256)
def codec_for(label: str | None) -> str | None:
	"""The Python codec to decode a charset label with, or None when nothing fits."""
	if not label:
		return None
	name = label.strip().strip("\"'").strip().lower()
	if not name:
		return None
	name = _ALIASES.get(name, name)
	for candidate in _candidates(name):
		try:
			info = codecs.lookup(candidate)
		except (LookupError, ValueError):
			continue
		if getattr(info, "_is_text_encoding", True) and info.name.replace("_", "-") not in _REFUSED:
			return info.name
	return None


def _candidates(name: str) -> list[str]:
	out = [name]
	for pattern, template in ((_UTF8, "utf-8"), (_WINDOWS, "cp{}"), (_ISO, "iso8859-{}"), (_KOI, "koi8-{}")):
		match = pattern.match(name)
		if match:
			out.append(template.format(*match.groups()))
	if name.startswith("x-"):
		out.append(name[2:])
	return out


def decode_bytes(
	data: bytes, label: str | None, defects: list[str], where: str, fallback: str | None = None
) -> str:
	"""Decode `data` labelled `label`; never raises.

	Tries the label's codec, then UTF-8, then `fallback` (e.g. the charset of the body for
	raw 8-bit headers), then replaces what is left. NUL bytes are dropped: they break
	databases and terminals and never carry meaning in mail text.
	"""
	codec = codec_for(label)
	if label and codec is None:
		defects.append(f"unknown charset {label.strip()[:40]!r} in {where}")
	text = None
	candidates = (codec, "utf-8", codec_for(fallback))
	if codec == "cp1252" and not data.isascii():
		# every byte is Latin-1, so only valid multibyte UTF-8 can say the label is wrong
		candidates = ("utf-8", codec)
	for candidate in dict.fromkeys(c for c in candidates if c):
		try:
			text = _western(data) if candidate == "cp1252" else data.decode(candidate)
		except UnicodeDecodeError:
			continue
		if candidate != codec and codec is not None:
			defects.append(f"{where} labelled {label.strip()[:40]} was decoded as {candidate}")
		break
	if text is None:
		text = data.decode(codec or "utf-8", "replace")
		defects.append(f"undecodable bytes replaced in {where}")
	if "\x00" in text:
		text = text.replace("\x00", "")
		defects.append(f"NUL bytes removed from {where}")
	return text


def _western(data: bytes) -> str:
	"""ISO-8859-1 and windows-1252 as mail means them: never fails, never loses a byte."""
	return data.decode("latin-1").translate(_CP1252_HIGH)


def surrogates_to_bytes(value: str) -> bytes:
	"""The original bytes of a string the email package decoded with surrogateescape."""
	return value.encode("utf-8", "surrogateescape")


def has_8bit(value: str) -> bool:
	return not value.isascii()
