"""Attachment names and records: what the sender called a file, and a name safe to store."""

import mimetypes
import re
import unicodedata
from email.message import Message

from usedesk_email.mail.charsets import decode_bytes
from usedesk_email.mail.headers import decode_text, one_line
from usedesk_email.mail.message import Attachment

MAX_NAME = 120  # characters, extension included; file systems and Frappe's File name field
_MAX_EXTENSION = 16
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*;%\\/]+')
_TEXT_REPORTS = ("message/delivery-status", "message/disposition-notification")
_WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)
# How image files start: a file named as an image that starts otherwise is stored as plain
# bytes (".bin" added), so nothing that processes images chokes on it.
_IMAGE_MAGIC = {
	"jpg": (b"\xff\xd8\xff",),
	"jpeg": (b"\xff\xd8\xff",),
	"jpe": (b"\xff\xd8\xff",),
	"png": (b"\x89PNG\r\n\x1a\n",),
	"gif": (b"GIF87a", b"GIF89a"),
	"bmp": (b"BM",),
	"webp": (b"RIFF",),
	"tif": (b"II*\x00", b"MM\x00*"),
	"tiff": (b"II*\x00", b"MM\x00*"),
	"ico": (b"\x00\x00\x01\x00",),
}


def sender_filename(part: Message, defects: list[str], fallback: str | None) -> str:
	"""The file name the sender gave: RFC 2231 (continuations, charset), RFC 2047, raw 8-bit."""
	for param, header in (("filename", "content-disposition"), ("name", "content-type")):
		value = part.get_param(param, None, header)
		if value is None:
			continue
		if isinstance(value, tuple):  # RFC 2231: (charset, language, text as latin-1)
			charset, _language, text = value
			name = decode_bytes(text.encode("latin-1", "replace"), charset or "utf-8", defects, "file name")
		else:
			name = decode_text(value, defects, "file name", fallback)
		name = one_line(name)
		if name:
			return name
	return ""


def safe_name(name: str, content_type: str, index: int) -> str:
	"""A name that cannot escape a folder, hide itself or break a file system; keeps the extension."""
	name = unicodedata.normalize("NFC", name)
	name = re.split(r"[\\/]", name)[-1]
	name = _UNSAFE.sub("_", name).strip(" ._")
	stem, dot, extension = name.rpartition(".")
	if not dot or not stem or len(extension) > _MAX_EXTENSION or not extension.strip():
		stem, extension = name, ""
	if not extension:
		guessed = mimetypes.guess_extension(content_type, strict=False)
		if not guessed:
			textual = content_type.startswith("text/") or content_type in _TEXT_REPORTS
			guessed = ".txt" if textual else ".bin"
		extension = guessed.lstrip(".")
	stem = stem.strip(" ._") or f"attachment-{index}"
	if _WINDOWS_DEVICES.match(stem):
		stem = f"_{stem}"
	stem = stem[: MAX_NAME - len(extension) - 1].rstrip(" .")
	return f"{stem}.{extension}"


def honest_name(name: str, payload: bytes) -> str:
	"""The name, with ".bin" added when it claims an image type its bytes are not."""
	extension = name.rpartition(".")[2].lower()
	magic = _IMAGE_MAGIC.get(extension)
	if magic and not payload.startswith(magic):
		return f"{name[: MAX_NAME - 4]}.bin"
	return name


def content_id(part: Message) -> str:
	value = part.get("content-id")
	if not value:
		return ""
	return "".join(str(value).split()).strip("<>")


def make_attachment(
	part: Message,
	payload: bytes,
	index: int,
	defects: list[str],
	fallback: str | None,
	filename: str | None = None,
) -> Attachment:
	content_type = part.get_content_type()
	name = sender_filename(part, defects, fallback) if filename is None else filename
	disposition = (part.get_content_disposition() or "").lower()
	cid = content_id(part)
	return Attachment(
		filename=name,
		safe_name=honest_name(safe_name(name, content_type, index), payload),
		content_type=content_type,
		payload=payload,
		content_id=cid,
		inline=bool(cid) and disposition != "attachment",
	)
