"""The package's layout rules, read from the code's own imports: no module imports another in
a circle, the engine imports neither Frappe nor the test servers, and what sends mail
imports nothing of what receives it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "usedesk_email"


def module_name(path: Path) -> str:
	parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
	return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
	"""Each product module (tests left out) and the modules it imports, at any depth of its code."""
	graph = {}
	for path in PACKAGE.rglob("*.py"):
		if path.name.startswith("test_") or "tests" in path.relative_to(PACKAGE).parts:
			continue
		found = set()
		for node in ast.walk(ast.parse(path.read_text(), str(path))):
			if isinstance(node, ast.Import):
				found.update(alias.name for alias in node.names)
			elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
				found.add(node.module)
				found.update(f"{node.module}.{alias.name}" for alias in node.names)
		graph[module_name(path)] = found
	return {
		name: {i for i in found if i in graph} | {i for i in found if not i.startswith("usedesk_email")}
		for name, found in graph.items()
	}


def test_no_module_imports_another_in_a_circle():
	graph = {name: {i for i in found if i.startswith("usedesk_email")} for name, found in imports().items()}
	done: set[str] = set()

	def visit(name: str, path: list[str]) -> None:
		if name in path:
			raise AssertionError("import circle: " + " -> ".join([*path[path.index(name) :], name]))
		if name in done:
			return
		for target in graph.get(name, ()):
			visit(target, [*path, name])
		done.add(name)

	for name in graph:
		visit(name, [])


def test_the_engine_imports_neither_frappe_nor_the_test_servers():
	for name, found in imports().items():
		if name.startswith("usedesk_email.mail"):
			wrong = {i for i in found if i.split(".")[0] == "frappe" or i.startswith("usedesk_email.testing")}
			assert not wrong, f"{name} imports {sorted(wrong)}"


def test_outbound_imports_nothing_of_inbound():
	for name, found in imports().items():
		if name.startswith("usedesk_email.outbound"):
			wrong = {i for i in found if i.startswith("usedesk_email.inbound")}
			assert not wrong, f"{name} imports {sorted(wrong)}"


def test_the_rules_see_the_code():
	"""A reading that found no modules or no imports would pass every rule above."""
	graph = imports()
	assert "usedesk_email.outbound.delivery" in graph and "usedesk_email.mail.drain" in graph
	assert "usedesk_email.outbound.transports" in graph["usedesk_email.outbound.delivery"]
	assert "frappe" in graph["usedesk_email.inbound.store"]
