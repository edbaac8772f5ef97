#!/usr/bin/env python3
"""Reads notifications, one per line, and prints one summary line each.

A line may be `ossnotify match` output ({"ruleId", "sinks", "message"}), a
notification JSON, or its Base64 (as MNS receives it)."""
import base64
import json
import sys

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    if not line.startswith("{"):
        line = base64.b64decode(line).decode("utf-8")
    doc = json.loads(line)
    sinks = ",".join(doc.get("sinks", []))
    message = doc.get("message", doc)
    for e in message["events"]:
        oss = e["oss"]
        target = oss["bucket"]["name"] + "/" + oss["object"]["key"]
        rule = oss["ruleId"] + (" -> " + sinks if sinks else "")
        print("{:>34}  {:<38} {} at {}".format(rule, e["eventName"], target, e["eventTime"]))
