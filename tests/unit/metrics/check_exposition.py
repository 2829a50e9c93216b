#!/usr/bin/python3
"""Parses a Prometheus text exposition file with prometheus_client (an outside reference
for signround's renderer) and prints what it read as JSON on stdout.

Usage: check_exposition.py FILE
Output: [{"name", "type", "help", "samples": [{"name", "labels", "value"}]}], where value is
repr(float) ("1.5", "inf", "-inf", "nan") so that non-finite values survive JSON.
Exit status: 0 parsed, 1 the file does not parse (message on stderr), 2 usage,
3 prometheus_client is not installed.
"""
import json
import sys


def main(argv):
    if len(argv) != 2:
        print("usage: check_exposition.py FILE", file=sys.stderr)
        return 2
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as e:
        print("prometheus_client not available: %s" % e, file=sys.stderr)
        return 3
    try:
        with open(argv[1], "rb") as f:
            text = f.read().decode("utf-8", errors="strict")
        families = []
        for family in text_string_to_metric_families(text):
            families.append({
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": repr(float(s.value))}
                            for s in family.samples],
            })
    except Exception as e:  # any parse failure is the answer, not a crash
        print("exposition does not parse: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    json.dump(families, sys.stdout, ensure_ascii=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
