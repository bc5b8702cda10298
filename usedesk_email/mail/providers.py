"""Connection presets of well-known mail providers, recognised from the mailbox address.

Admins type an address and expect the rest to fill itself in; these are the providers'
published IMAP/SMTP endpoints. Security uses the engine's vocabulary: ssl | starttls | none.
"""

from dataclasses import dataclass

from usedesk_email.mail.errors import ConfigError

Endpoint = tuple[str, int, str]  # host, port, security


@dataclass(frozen=True)
class ProviderPreset:
	name: str
	imap: Endpoint
	smtp: Endpoint
	# The provider itself files what its SMTP server accepted into the Sent folder: the
	# channel must not append a second copy.
	saves_sent: bool = False


# Microsoft's servers: also what an "Office 365" connection uses whatever the address.
OFFICE_365 = ProviderPreset(
	"Outlook / Office 365",
	("outlook.office365.com", 993, "ssl"),
	("smtp.office365.com", 587, "starttls"),
	saves_sent=True,
)

_PRESETS = (
	(
		ProviderPreset(
			"Gmail", ("imap.gmail.com", 993, "ssl"), ("smtp.gmail.com", 465, "ssl"), saves_sent=True
		),
		("gmail.com", "googlemail.com"),
	),
	(
		ProviderPreset("Yandex", ("imap.yandex.ru", 993, "ssl"), ("smtp.yandex.ru", 465, "ssl")),
		("yandex.ru", "yandex.com", "ya.ru", "yandex.by", "yandex.kz", "yandex.ua"),
	),
	(
		ProviderPreset("Mail.ru", ("imap.mail.ru", 993, "ssl"), ("smtp.mail.ru", 465, "ssl")),
		("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru"),
	),
	(
		OFFICE_365,
		("outlook.com", "hotmail.com", "live.com", "msn.com", "office365.com", "onmicrosoft.com"),
	),
	(
		ProviderPreset("Yahoo", ("imap.mail.yahoo.com", 993, "ssl"), ("smtp.mail.yahoo.com", 465, "ssl")),
		# Not yahoo.co.jp: Yahoo! JAPAN is a separate service with its own servers.
		tuple(
			"yahoo.com ymail.com rocketmail.com yahoo.co.uk yahoo.de yahoo.fr yahoo.es yahoo.it yahoo.ca"
			" yahoo.in yahoo.co.in yahoo.com.au yahoo.com.br yahoo.com.mx yahoo.com.ar yahoo.co.id"
			" yahoo.com.sg yahoo.com.ph yahoo.gr yahoo.se yahoo.ie".split()
		),
	),
	(
		ProviderPreset("iCloud", ("imap.mail.me.com", 993, "ssl"), ("smtp.mail.me.com", 587, "starttls")),
		("icloud.com", "me.com", "mac.com"),
	),
	(
		ProviderPreset("Zoho", ("imap.zoho.com", 993, "ssl"), ("smtp.zoho.com", 465, "ssl")),
		("zoho.com", "zohomail.com"),
	),
	(
		ProviderPreset("GMX", ("imap.gmx.com", 993, "ssl"), ("mail.gmx.com", 587, "starttls")),
		("gmx.com", "gmx.us"),
	),
	(
		# GMX's German-speaking service: its own hosts, not gmx.com's.
		ProviderPreset("GMX", ("imap.gmx.net", 993, "ssl"), ("mail.gmx.net", 587, "starttls")),
		("gmx.net", "gmx.de", "gmx.at", "gmx.ch"),
	),
)
_BY_DOMAIN = {domain: preset for preset, domains in _PRESETS for domain in domains}
# Every host a preset fills in: the channel form replaces these when the address changes provider.
PRESET_HOSTS = tuple(sorted({p.imap[0] for p, _ in _PRESETS} | {p.smtp[0] for p, _ in _PRESETS}))

_DEFAULT_PORTS = {
	"imap": {"ssl": 993, "starttls": 143, "none": 143},
	"smtp": {"ssl": 465, "starttls": 587, "none": 25},
}


def preset_for(address: str) -> ProviderPreset | None:
	"""The preset of the address's provider, or None for any other or a malformed address."""
	if not isinstance(address, str):
		raise ConfigError(f"an e-mail address must be text, not {type(address).__name__}")
	local, at, domain = address.strip().rpartition("@")
	if not at or not local or not domain:
		return None
	try:
		domain = domain.encode("idna").decode("ascii").lower()
	except UnicodeError:
		return None
	domain = domain.rstrip(".")
	if domain.endswith(".onmicrosoft.com"):  # a Microsoft 365 tenant's own domain
		domain = "onmicrosoft.com"
	return _BY_DOMAIN.get(domain)


def default_port(security: str, protocol: str) -> int:
	"""The usual port for an encryption, which the channel form proposes when one is chosen."""
	try:
		return _DEFAULT_PORTS[protocol][security.strip().lower()]
	except (KeyError, AttributeError):
		raise ConfigError(f"no usual port for {protocol!r} with encryption {security!r}") from None


def saves_sent(smtp_host: str) -> ProviderPreset | None:
	"""The provider whose SMTP server this is when it files sent mail itself, else None."""
	host = (smtp_host or "").strip().lower().rstrip(".")
	for preset, _domains in _PRESETS:
		if preset.saves_sent and preset.smtp[0] == host:
			return preset
	return None
