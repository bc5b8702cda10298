"""Provider presets, recognised from the address."""

import pytest

from usedesk_email.mail.errors import ConfigError
from usedesk_email.mail.providers import default_port, preset_for


@pytest.mark.parametrize(
	"address, imap_host, smtp_host",
	[
		("Support@Gmail.com", "imap.gmail.com", "smtp.gmail.com"),
		("a@googlemail.com", "imap.gmail.com", "smtp.gmail.com"),
		("a@ya.ru", "imap.yandex.ru", "smtp.yandex.ru"),
		("a@bk.ru", "imap.mail.ru", "smtp.mail.ru"),
		("a@hotmail.com", "outlook.office365.com", "smtp.office365.com"),
		("a@yahoo.co.uk", "imap.mail.yahoo.com", "smtp.mail.yahoo.com"),
		("a@me.com", "imap.mail.me.com", "smtp.mail.me.com"),
		("a@zohomail.com", "imap.zoho.com", "smtp.zoho.com"),
		("a@gmx.de", "imap.gmx.com", "mail.gmx.com"),
	],
)
def test_well_known_providers(address, imap_host, smtp_host):
	preset = preset_for(address)
	assert preset.imap[0] == imap_host and preset.smtp[0] == smtp_host
	assert preset.imap[1:] == (993, "ssl")
	assert preset.smtp[2] in ("ssl", "starttls")


def test_office_365_uses_starttls_for_smtp():
	assert preset_for("a@outlook.com").smtp == ("smtp.office365.com", 587, "starttls")


@pytest.mark.parametrize(
	"address", ["", "no-at-sign", "@gmail.com", "a@", "a@example.com", "a@ex\udcffample"]
)
def test_unknown_or_malformed_addresses_have_no_preset(address):
	assert preset_for(address) is None


def test_non_text_is_a_config_error():
	with pytest.raises(ConfigError):
		preset_for(None)


def test_default_ports():
	assert [default_port(s, "imap") for s in ("SSL", "starttls", "none")] == [993, 143, 143]
	assert [default_port(s, "smtp") for s in ("ssl", "STARTTLS", "None")] == [465, 587, 25]
	with pytest.raises(ConfigError):
		default_port("tls13", "imap")
