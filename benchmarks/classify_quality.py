"""Precision and recall of classification over the labelled set in tests/eml/classify.

Usage: python benchmarks/classify_quality.py [--root PATH]

Each folder of tests/eml/classify is named after the Kind its letters must get (bounce,
auto-reply, feedback, bulk, normal). Prints precision and recall per class, the share of
machine mail (everything but normal and bulk) kept out of the tickets, the number of
persons misclassified, and every letter that got a wrong class. --root points at another
checkout, to measure its engine on this set.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests" / "eml" / "classify"
MACHINE = ("bounce", "auto-reply", "feedback")


def main() -> int:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose engine is measured")
	args = parser.parse_args()
	sys.path.insert(0, str(args.root.resolve()))
	from usedesk_email.mail.parse import parse_message

	pairs = [(path, parse_message(path.read_bytes()).kind.value) for path in sorted(LABELLED.glob("*/*.eml"))]
	truth = Counter(path.parent.name for path, _ in pairs)
	said = Counter(kind for _, kind in pairs)
	right = Counter(kind for path, kind in pairs if kind == path.parent.name)
	print(f"{'class':<12}{'letters':>8}{'precision':>11}{'recall':>9}")
	for label in sorted(truth):
		precision = right[label] / said[label] if said[label] else 0.0
		print(f"{label:<12}{truth[label]:>8}{precision:>11.1%}{right[label] / truth[label]:>9.1%}")
	machine = [kind for path, kind in pairs if path.parent.name in MACHINE]
	caught = sum(kind in MACHINE for kind in machine)
	print(f"machine mail kept out of tickets: {caught}/{len(machine)} ({caught / len(machine):.1%})")
	print(f"persons misclassified: {truth['normal'] - right['normal']}")
	for path, kind in pairs:
		if kind != path.parent.name:
			print(f"  {path.parent.name}/{path.name}: {kind}")
	return 0


if __name__ == "__main__":
	sys.exit(main())
