# Copyright (c) 2026, usedesk_email developers and contributors
# For license information, please see license.txt

import secrets

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.utils import validate_email_address

from usedesk_email.channel.config import (
	BINDINGS,
	ENCRYPTION,
	OAUTH_IMAP_BINDING,
	OAUTH_SMTP_BINDING,
	SMTP_WITH_IMAP_BINDING,
	additional_emails,
	changed_fields,
	refuse_if_changed,
	saved_row,
	stored_secret,
)
from usedesk_email.channel.kinds import EXTERNAL, INTERNAL, OFFICE_365, OWN_SERVER
from usedesk_email.engine_errors import described
from usedesk_email.inbound.poll import enqueue_poll
from usedesk_email.mail import providers
from usedesk_email.mail.errors import MailError
from usedesk_email.mail.providers import default_port, preset_for
from usedesk_email.outbound.sent_folder import default_off, folder_names
from usedesk_email.usedesk_email.doctype.email_channel_settings.email_channel_settings import inbound_domain

PASSWORD_MASK = "*" * 8  # what the row keeps of any password: Frappe's own mask has its length
# Written by the real-time listener while a form is open (inbound/listen.py, leases.py).
LISTENER_FIELDS = ("listener", "lease_until", "live_state", "last_event_at", "listener_error")


class EmailChannel(Document):
	def validate(self):
		self.normalise_addresses()
		self.apply_provider_presets()
		self.default_save_to_sent()
		self.propose_ports()
		self.validate_required_for_types()
		self.validate_ports()
		self.validate_addresses()
		self.ensure_internal_address()
		self.keep_secrets_bound()
		self.keep_listener_fields()

	def normalise_addresses(self):
		for field in ("main_email", "from_email", "bcc_email", "imap_email"):
			if self.get(field):
				self.set(field, self.get(field).strip().lower())
		if self.additional_emails:
			self.additional_emails = "\n".join(additional_emails(self))
		for field in ("imap_host", "smtp_host", "imap_username", "smtp_username"):
			if self.get(field):
				self.set(field, self.get(field).strip())

	def apply_provider_presets(self):
		"""Fill host, port and encryption of well-known providers the admin left empty."""
		address = self.imap_email or self.imap_username or self.from_email
		preset = preset_for(address) if address and "@" in address else None
		if self.incoming_type == OFFICE_365 or self.outgoing_type == OFFICE_365:
			preset = providers.OFFICE_365
		if not preset:
			return
		if self.incoming_type in OWN_SERVER and not self.imap_host:
			self.imap_host, self.imap_port, security = preset.imap
			self.imap_encryption = ENCRYPTION[security]
		if self.outgoing_type in OWN_SERVER and not self.smtp_host:
			self.smtp_host, self.smtp_port, security = preset.smtp
			self.smtp_encryption = ENCRYPTION[security]

	def default_save_to_sent(self):
		"""A new channel starts with Sent-folder saving off where it would do nothing or make
		a second copy (Internal outgoing, providers that file sent mail themselves)."""
		if self.is_new() and default_off(self):
			self.save_to_sent = 0

	def propose_ports(self):
		if self.incoming_type in OWN_SERVER and not self.imap_port:
			self.imap_port = default_port((self.imap_encryption or "SSL").lower(), "imap")
		if self.outgoing_type in OWN_SERVER and not self.smtp_port:
			self.smtp_port = default_port((self.smtp_encryption or "STARTTLS").lower(), "smtp")

	def validate_required_for_types(self):
		required = ["from_email"]
		if self.incoming_type == INTERNAL:
			required.append("main_email")
		if self.incoming_type == EXTERNAL:
			required += ["imap_username", "imap_password", "imap_host", "imap_port"]
		if self.outgoing_type == EXTERNAL:
			required += ["smtp_host", "smtp_port"]
			if not self.smtp_uses_imap_credentials():
				required.append("smtp_username")
		if self.incoming_type == OFFICE_365:
			required += ["imap_host", "imap_port"]
		if self.outgoing_type == OFFICE_365:
			required += ["smtp_host", "smtp_port"]
		if OFFICE_365 in (self.incoming_type, self.outgoing_type):
			required.append("connected_app")
		if self.use_common_signature:
			required.append("signature")
		missing = [_(self.meta.get_label(f)) for f in required if not self.has_value(f)]
		if missing:
			frappe.throw(
				_("Please fill in: {0}").format(", ".join(missing)),
				frappe.MandatoryError,
				title=_("Missing values"),
			)

	def has_value(self, fieldname: str) -> bool:
		if self.meta.get_field(fieldname).fieldtype == "Password":
			return bool(self.get(fieldname) or self.get_password(fieldname, raise_exception=False))
		if fieldname == "signature":
			return bool(frappe.utils.strip_html(self.signature or "").strip())
		return bool(self.get(fieldname))

	def smtp_uses_imap_credentials(self) -> bool:
		return bool(self.smtp_use_imap_credentials) and self.incoming_type == EXTERNAL

	def validate_ports(self):
		for field, type_field in (("imap_port", "incoming_type"), ("smtp_port", "outgoing_type")):
			if self.get(type_field) in OWN_SERVER and not 1 <= int(self.get(field) or 0) <= 65535:
				frappe.throw(
					_("{0} must be a number from 1 to 65535, not {1}.").format(
						_(self.meta.get_label(field)), self.get(field)
					),
					title=_("Invalid port"),
				)

	def validate_addresses(self):
		for field in ("main_email", "from_email", "bcc_email", "imap_email"):
			if self.get(field):
				validate_email_address(self.get(field), throw=True)
		for address in additional_emails(self):
			validate_email_address(address, throw=True)

	def keep_secrets_bound(self):
		"""A stored secret stays with the server it was saved for (see channel_config.secret).

		Changing its host, port, encryption or username needs the password typed again; a changed
		Office 365 connection needs authorising again.
		"""
		if self.is_new():
			return
		saved = saved_row(self)
		if not saved:
			return
		for fieldname, binding in BINDINGS.items():
			if self.keeps_stored(fieldname):
				refuse_if_changed(self, binding, _(self.meta.get_label(fieldname)), saved)
		if self.smtp_use_imap_credentials and self.keeps_stored("imap_password"):
			refuse_if_changed(self, SMTP_WITH_IMAP_BINDING, _(self.meta.get_label("imap_password")), saved)
		oauth = [
			b
			for t, b in ((self.incoming_type, OAUTH_IMAP_BINDING), (self.outgoing_type, OAUTH_SMTP_BINDING))
			if t == OFFICE_365
		]
		fields = tuple(f for binding in oauth for f in binding if f != "connected_user")
		if self.connected_user and changed_fields(self, fields, saved):
			self.connected_user = None
			frappe.msgprint(
				_("The Office 365 connection changed: use Authorize again after saving."),
				title=_("Authorise again"),
				indicator="orange",
			)

	def keep_listener_fields(self):
		"""A save keeps what the listener wrote meanwhile: putting back the lease the form
		loaded would let a second listener take the channel while the first still holds it."""
		if not self.is_new():
			self.update(frappe.db.get_value(self.doctype, self.name, LISTENER_FIELDS, as_dict=True) or {})

	def keeps_stored(self, fieldname: str) -> bool:
		value = self.get(fieldname)
		return bool(value) and self.is_dummy_password(value) and bool(stored_secret(self.name, fieldname))

	def _save_passwords(self):
		"""Frappe's save, then one fixed mask: its "*" * len(password) tells the length."""
		super()._save_passwords()
		for df in self.meta.get("fields", {"fieldtype": "Password"}):
			if self.get(df.fieldname):
				self.set(df.fieldname, PASSWORD_MASK)

	def ensure_internal_address(self):
		"""Generate the forwarding address once; an unguessable local part keeps strangers out."""
		if self.internal_address:
			return
		self.internal_address = f"in-{secrets.token_hex(10)}@{inbound_domain()}".lower()

	@frappe.whitelist()
	def test_connection(self) -> dict:
		# Imported here: every poll job loads this controller, and the check brings the
		# outgoing side with it (a fifth of a second of imports a job).
		from usedesk_email.channel.connection_check import check_channel

		self.check_permission("write")  # managers only; agents may not log in to mailboxes
		return check_channel(self)

	@frappe.whitelist()
	def sent_folders(self) -> dict:
		"""The mailbox's folders for the Sent Folder field, and the one the server marks Sent."""
		self.check_permission("write")  # managers only; agents may not log in to mailboxes
		try:
			return folder_names(self)
		except MailError as error:
			frappe.throw(described(error), title=_("Could not list the folders"))

	@frappe.whitelist()
	def authorize(self) -> str:
		"""Start Microsoft's sign-in for this channel; the Token Cache is kept for this user."""
		self.check_permission("write")
		if not self.connected_app:
			frappe.throw(_("Choose the Connected App first."), title=_("No Connected App"))
		self.db_set("connected_user", frappe.session.user)
		return frappe.get_doc("Connected App", self.connected_app).initiate_web_application_flow(
			user=frappe.session.user, success_uri=self.get_url()
		)

	@frappe.whitelist()
	def poll_now(self) -> dict:
		self.check_permission("write")  # managers only; agents may not log in to mailboxes
		return {"job_id": enqueue_poll(self.name)}
