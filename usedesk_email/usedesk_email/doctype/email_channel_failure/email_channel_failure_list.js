frappe.listview_settings["Email Channel Failure"] = {
	get_indicator(doc) {
		return doc.status === "Retried"
			? [__("Retried"), "green", "status,=,Retried"]
			: [__("Failed"), "red", "status,=,Failed"];
	},
};
