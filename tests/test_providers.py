"""Provider presets, recognised from the address."""

import pytest

from usedesk_email.mail.errors import ConfigError
from usedesk_email.mail.providers import OFFICE_365, PRESET_HOSTS, default_port, preset_for, saves_sent


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
		("a@gmx.com", "imap.gmx.com", "mail.gmx.com"),
		("a@gmx.de", "imap.gmx.net", "mail.gmx.net"),
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


@pytest.mark.parametrize(
	"name, domains",
	[
		("Gmail", "gmail.com googlemail.com"),
		("Yandex", "yandex.ru yandex.com ya.ru yandex.by yandex.kz yandex.ua"),
		("Mail.ru", "mail.ru inbox.ru list.ru bk.ru internet.ru"),
		("Outlook / Office 365", "outlook.com hotmail.com live.com msn.com"),
		("Yahoo", "yahoo.com ymail.com yahoo.fr yahoo.com.br"),
		("iCloud", "icloud.com me.com mac.com"),
		("Zoho", "zoho.com zohomail.com"),
		("GMX", "gmx.com gmx.net gmx.de"),
	],
)
def test_every_domain_of_each_provider(name, domains):
	for domain in domains.split():
		assert preset_for(f"someone@{domain}").name == name, domain


def test_address_forms_are_normalised():
	gmail = preset_for("a@gmail.com")
	assert preset_for("  A.B+tag@GMAIL.COM  ") == gmail
	assert preset_for("a@gmail.com.") == gmail, "a fully qualified domain"
	assert preset_for("a@ｇｍａｉｌ．ｃｏｍ") == gmail, "IDNA mapping of full-width letters"
	assert preset_for('"weird@local"@gmail.com') == gmail, "the domain is after the last @"
	assert preset_for("a@почта.рф") is None, "an IDN domain of no known provider"


def test_separate_services_are_not_confused():
	assert preset_for("a@yahoo.co.jp") is None, "Yahoo! JAPAN has its own servers"
	assert preset_for("a@gmail.com.evil.example") is None
	assert preset_for("a@notgmail.com") is None
	tenant = preset_for("admin@contoso.onmicrosoft.com")
	assert tenant.imap == ("outlook.office365.com", 993, "ssl")
	assert tenant.smtp == ("smtp.office365.com", 587, "starttls")


def test_icloud_and_office365_endpoints():
	icloud = preset_for("a@icloud.com")
	assert (icloud.imap, icloud.smtp) == (
		("imap.mail.me.com", 993, "ssl"),
		("smtp.mail.me.com", 587, "starttls"),
	)


@pytest.mark.parametrize("protocol, security", [("pop3", "ssl"), ("imap", ""), ("smtp", None)])
def test_default_port_refuses_unknown_values(protocol, security):
	with pytest.raises(ConfigError):
		default_port(security, protocol)


def test_providers_that_file_sent_mail_themselves_are_known_by_their_smtp_host():
	assert saves_sent("smtp.gmail.com").name == "Gmail"
	assert saves_sent(" SMTP.office365.com. ").name == "Outlook / Office 365"
	assert saves_sent("smtp.mail.ru") is None, "Mail.ru: not known to save what SMTP sent"
	assert saves_sent("mail.shop.example") is None
	assert saves_sent("") is None


def test_preset_hosts_hold_every_host_a_preset_fills_in():
	"""The channel form replaces these when the address moves to another provider."""
	for address in ("a@gmail.com", "a@yandex.ru", "a@mail.ru", "a@gmx.net", "a@icloud.com"):
		preset = preset_for(address)
		assert {preset.imap[0], preset.smtp[0]} <= set(PRESET_HOSTS), address
	assert {OFFICE_365.imap[0], OFFICE_365.smtp[0]} <= set(PRESET_HOSTS)
	assert "imap.example.com" not in PRESET_HOSTS
	assert list(PRESET_HOSTS) == sorted(set(PRESET_HOSTS))
