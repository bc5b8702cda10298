app_name = "usedesk_email"
app_title = "Usedesk Email"
app_publisher = "usedesk_email developers"
app_description = "A helpdesk e-mail channel for Frappe: mailboxes become Tickets, agents reply with signatures and quotes"
app_email = "dev@usedesk-email.invalid"
app_license = "mit"

required_apps = []

export_python_type_annotations = True
