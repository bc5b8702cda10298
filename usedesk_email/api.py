"""Whitelisted methods of the app (desk and REST)."""

import frappe

from usedesk_email.channel_config import ENCRYPTION
from usedesk_email.mail.providers import preset_for


@frappe.whitelist()
def provider_preset(address: str) -> dict | None:
	"""Host, port and encryption of a well-known provider, for the channel form to fill in live."""
	preset = preset_for(address)
	if not preset:
		return None
	(imap_host, imap_port, imap_security), (smtp_host, smtp_port, smtp_security) = preset.imap, preset.smtp
	return {
		"imap_host": imap_host,
		"imap_port": imap_port,
		"imap_encryption": ENCRYPTION[imap_security],
		"smtp_host": smtp_host,
		"smtp_port": smtp_port,
		"smtp_encryption": ENCRYPTION[smtp_security],
	}
