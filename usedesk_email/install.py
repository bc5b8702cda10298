"""Install and migrate hooks: the roles the app's permissions are written for, an index
Frappe's File lacks, the compiled translations, and Ticket in global search."""

import frappe

APP = "usedesk_email"
ROLES = ("Support Agent", "Support Manager")


def ensure_roles() -> None:
	"""Create the app's roles; doctype permissions name them, so they must exist first."""
	for role in ROLES:
		if not frappe.db.exists("Role", role):
			frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(
				ignore_permissions=True
			)


def grant_communication_read() -> None:
	"""Let the app's roles read Communications. A mail's attachments and inline images are
	private Files of its Communication, and Frappe serves one only to a user who may read
	that Communication; without a role rule an agent got 403 for every attachment and the
	timeline showed broken images. Frappe's own Communication check still applies: a
	Communication is readable only by those who may read the document it belongs to."""
	from frappe.permissions import add_permission

	for role in ROLES:
		if not frappe.db.exists(
			"Custom DocPerm", {"parent": "Communication", "role": role, "permlevel": 0, "if_owner": 0}
		):
			add_permission("Communication", role, 0, "read")
	frappe.clear_cache(doctype="Communication")


FILE_HASH_INDEX = "usedesk_content_hash"


def index_file_hashes() -> None:
	"""Frappe looks up every saved file by its content hash (to store equal bytes once), and
	`tabFile` has no index for it: each attachment of each message scanned the whole table."""
	frappe.db.add_index("File", ["content_hash"], index_name=FILE_HASH_INDEX)


def compile_translations() -> None:
	"""Frappe reads an app's translations from `sites/assets/locale/<lang>/LC_MESSAGES/<app>.mo`,
	which `bench build` compiles from the app's `locale/<lang>.po`. Compiled here too, so a site
	installed or migrated without a build (a `git pull` and `migrate`) speaks the po it has."""
	from frappe.gettext.translate import get_catalog, get_locales, get_mo_path, write_binary

	for locale in get_locales(APP):
		try:
			write_binary(APP, get_catalog(APP, locale), locale)
		except OSError as error:  # a bench whose assets are read-only: `bench build` compiles them
			print(f"usedesk_email: {get_mo_path(APP, locale)} not written ({error}); run bench build")
	frappe.translate.clear_cache()


def add_ticket_to_global_search() -> None:
	"""Ticket among the DocTypes global search shows: the setup wizard takes them from the
	apps' `global_search_doctypes` hooks, so a site set up before the app came lacks it."""
	settings = frappe.get_single("Global Search Settings")
	if "Ticket" not in {row.document_type for row in settings.allowed_in_global_search}:
		settings.append("allowed_in_global_search", {"document_type": "Ticket"})
		settings.save(ignore_permissions=True)
