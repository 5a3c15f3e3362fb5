"""consumer.replay and `acs-sms-consumer replay`: inputs, exposition on stdout, summary on stderr."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from consumer.config import PipelineSettings
from consumer.replay import iter_bodies, replay

SAMPLES = Path(__file__).resolve().parent.parent / "consumer" / "samples"
ALL_SAMPLES = sorted(str(p) for p in SAMPLES.iterdir())
SCRIPT = Path(sys.executable).parent / "acs-sms-consumer"

USAGE_BODY = {"records": [{"time": "2026-11-02T10:00:00Z", "category": "Usage", "operationName": "Usage",
                           "properties": {"RecordId": "r1", "UsageType": "SMS", "UnitType": "Message", "Quantity": 2}}]}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed, name, **labels):
    """The sum of `name` over the series that have `labels` (as `sum by` of them would give); KeyError
    when there is none. (The samples come from several resources: `resource` is asserted on its own.)"""
    wanted = frozenset(labels.items())
    found = [v for (n, series), v in parsed.items() if n == name and wanted <= series]
    if not found:
        raise KeyError((name, wanted))
    return sum(found)


def run_replay(inputs, stdin=b"", settings=None):
    out, err = io.BytesIO(), io.BytesIO()
    code = replay(inputs, settings or PipelineSettings(), out, err, io.BytesIO(stdin))
    return code, out.getvalue().decode(), err.getvalue().decode()


def check_all_samples(stdout: str, stderr: str) -> None:
    parsed = samples(stdout)
    ops = "acs_sms_operations_total"
    assert value(parsed, ops, operation="SMSMessagesSent", result="Succeeded", number_type="LongCodeNumber", country="US") == 2
    assert value(parsed, ops, operation="SMSMessagesSent", result="Succeeded", number_type="LongCodeNumber", country="DE") == 1
    assert value(parsed, ops, operation="SMSMessagesSent", result="Failed", number_type="DynamicAlphaSenderID", country="GB") == 1
    assert value(parsed, ops, operation="SMSMessagesReceived", result="Succeeded", number_type="LongCodeNumber", country="US") == 2
    assert value(parsed, ops, operation="SMSOptOutReceived", result="Succeeded", number_type="LongCodeNumber", country="US") == 1
    assert sum(v for (n, _), v in parsed.items() if n == ops) == 13
    # the Event Hubs samples' resourceId (…/COMMUNICATIONSERVICES/ACS-SAMPLE); the Log Analytics one has none
    assert value(parsed, ops, operation="SMSMessagesSent", result="Succeeded", number_type="LongCodeNumber", country="US",
                 resource="acs-sample") == 1
    assert value(parsed, ops, operation="SMSMessagesSent", result="Succeeded", number_type="LongCodeNumber", country="US",
                 resource="unknown") == 1
    assert {dict(series).get("resource") for (n, series) in parsed if n == ops} == {"acs-sample", "unknown"}
    assert value(parsed, "acs_sms_failures_total", operation="SMSMessagesSent", result_signature="500",
                 number_type="DynamicAlphaSenderID", country="GB") == 1
    rec = "acs_consumer_records_total"
    assert value(parsed, rec, category="SMSOperational", outcome="processed") == 13
    assert value(parsed, rec, category="Usage", outcome="processed") == 4
    assert value(parsed, rec, category="ChatOperational", outcome="skipped") == 1
    assert value(parsed, rec, category="SMSOperational", outcome="invalid") == 1
    assert value(parsed, "acs_consumer_decode_errors_total", reason="invalid_json") == 1
    assert value(parsed, "acs_consumer_repaired_bodies_total") == 2
    assert value(parsed, "acs_consumer_events_total", partition="replay") == 8
    assert value(parsed, "acs_usage_quantity_total", usage_type="SMS", unit_type="Message") == 4
    assert value(parsed, "acs_usage_quantity_total", usage_type="PSTN", unit_type="Minute") == 2.5
    assert value(parsed, "acs_sms_message_characters_total", direction="outgoing") == 384
    assert value(parsed, "acs_sms_message_characters_total", direction="incoming") == 161
    assert value(parsed, "acs_sms_delivery_latency_seconds_count", result="Succeeded", number_type="LongCodeNumber", source="paired") == 2
    assert value(parsed, "acs_sms_delivery_latency_seconds_bucket", result="Failed", number_type="TollFreeNumber", source="paired", le="60.0") == 0
    assert value(parsed, "acs_sms_delivery_latency_seconds_bucket", result="Failed", number_type="TollFreeNumber", source="paired", le="120.0") == 1
    assert value(parsed, "acs_sms_correlation_pending", side="sent") == 1
    lines = stderr.splitlines()
    assert lines[-1] == "replay: 8 bodies, 1 rejected (invalid_json=1); 19 records: processed=17 invalid=1 skipped=1 duplicate=0"
    assert any(line.startswith(f"replay: {SAMPLES / 'quirks.jsonl'}:3: rejected (invalid_json): not JSON") for line in lines)
    assert f"replay: {SAMPLES / 'quirks.jsonl'}:4: invalid record: durationMs input should be a valid number" in stderr


def test_replay_in_process_all_samples():
    code, stdout, stderr = run_replay(ALL_SAMPLES)
    assert code == 0
    check_all_samples(stdout, stderr)


def test_console_script_all_samples():
    script = str(SCRIPT) if SCRIPT.exists() else shutil.which("acs-sms-consumer")
    assert script, "console script acs-sms-consumer is not installed"
    proc = subprocess.run([script, "replay", *ALL_SAMPLES], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    check_all_samples(proc.stdout.decode(), proc.stderr.decode())


def test_python_m_consumer_stdin_and_missing_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "consumer", "replay", "-"], input=json.dumps(USAGE_BODY).encode(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    parsed = samples(proc.stdout.decode())
    assert value(parsed, "acs_usage_quantity_total", usage_type="SMS", unit_type="Message") == 2
    assert proc.stderr.decode().splitlines()[-1] == (
        "replay: 1 bodies, 0 rejected; 1 records: processed=1 invalid=0 skipped=0 duplicate=0"
    )
    missing = tmp_path / "nope.json"
    proc = subprocess.run([sys.executable, "-m", "consumer", "replay", str(missing)], capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert proc.stderr.decode().strip() == f"acs-sms-consumer replay: error: cannot read {missing}: No such file or directory"


def test_unreadable_input_is_an_error_without_metrics(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(USAGE_BODY))
    code, stdout, stderr = run_replay([str(good), str(tmp_path / "missing.json")])
    assert code == 2
    assert stdout == ""
    assert stderr == f"acs-sms-consumer replay: error: cannot read {tmp_path / 'missing.json'}: No such file or directory\n"


def test_stdin_is_one_body():
    code, stdout, stderr = run_replay(["-"], stdin=json.dumps(USAGE_BODY).encode())
    assert code == 0
    assert value(samples(stdout), "acs_usage_records_total", usage_type="SMS", unit_type="Message") == 1


def test_jsonl_is_one_body_per_line_and_blank_lines_are_ignored(tmp_path):
    f = tmp_path / "bodies.jsonl"
    lines = [json.dumps(USAGE_BODY), "", json.dumps({"records": [USAGE_BODY["records"][0] | {"properties": {
        "RecordId": "r2", "UsageType": "SMS", "UnitType": "Message", "Quantity": 3}}]}), "   ", "garbage"]
    f.write_text("\n".join(lines) + "\n")
    assert [where for where, _ in iter_bodies([str(f)], io.BytesIO())] == [f"{f}:1", f"{f}:3", f"{f}:5"]
    code, stdout, stderr = run_replay([str(f)])
    assert code == 0
    parsed = samples(stdout)
    assert value(parsed, "acs_usage_quantity_total", usage_type="SMS", unit_type="Message") == 5
    assert value(parsed, "acs_consumer_decode_errors_total", reason="invalid_json") == 1
    assert stderr.splitlines()[-1] == "replay: 3 bodies, 1 rejected (invalid_json=1); 2 records: processed=2 invalid=0 skipped=0 duplicate=0"


def test_jsonl_keeps_carriage_returns_inside_a_body(tmp_path):
    f = tmp_path / "cr.JSONL"
    f.write_bytes(b'{"records": [{"category": "X", "resultDescription": "a\rb"}]}\n')
    [(where, data)] = list(iter_bodies([str(f)], io.BytesIO()))
    assert where == f"{f}:1" and b"a\rb" in data


def test_directory_is_one_body_per_file_recursively(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.json").write_text(json.dumps(USAGE_BODY))
    (tmp_path / "sub" / "b.json").write_text(json.dumps(USAGE_BODY))  # same record: a duplicate
    (tmp_path / "sub" / "c.txt").write_text("not json")
    wheres = [where for where, _ in iter_bodies([str(tmp_path)], io.BytesIO())]
    assert wheres == [str(tmp_path / "a.json"), str(tmp_path / "sub" / "b.json"), str(tmp_path / "sub" / "c.txt")]
    code, stdout, stderr = run_replay([str(tmp_path)])
    assert code == 0
    parsed = samples(stdout)
    assert value(parsed, "acs_consumer_records_total", category="Usage", outcome="duplicate") == 1
    assert value(parsed, "acs_usage_records_total", usage_type="SMS", unit_type="Message") == 1
    assert stderr.splitlines()[-1] == "replay: 3 bodies, 1 rejected (invalid_json=1); 2 records: processed=1 invalid=0 skipped=0 duplicate=1"


def test_settings_are_used(tmp_path):
    f = tmp_path / "body.json"
    f.write_text(json.dumps(USAGE_BODY))
    code, stdout, stderr = run_replay([str(f)], settings=PipelineSettings(max_body_bytes=10))
    assert code == 0
    assert value(samples(stdout), "acs_consumer_decode_errors_total", reason="too_large") == 1
    assert "rejected (too_large): body is" in stderr


def test_no_created_series_in_replay_output():
    code, stdout, _ = run_replay(ALL_SAMPLES)
    assert code == 0 and "_created" not in stdout
