import json

from accord.participant.sitelog import SiteLog


def test_events_are_appended_as_json_lines_readable_at_once(tmp_path):
    path = tmp_path / "logs" / "site.jsonl"
    log = SiteLog(path)

    log.record("received_task", round=1, kind="train")
    log.record("sent_update", round=1, bytes=128, digest="ab" * 32)
    lines = path.read_text().splitlines()  # flushed before close
    log.close()

    assert [json.loads(line)["event"] for line in lines] == [
        "received_task",
        "sent_update",
    ]
    entries = SiteLog.read(path)
    assert entries[1]["bytes"] == 128 and "at" in entries[1]


def test_a_log_reopened_later_keeps_what_was_there(tmp_path):
    path = tmp_path / "site.jsonl"
    first = SiteLog(path)
    first.record("connected")
    first.close()
    second = SiteLog(path)
    second.record("goodbye")
    second.close()

    assert [e["event"] for e in SiteLog.read(path)] == ["connected", "goodbye"]


def test_without_a_file_the_log_only_goes_to_the_logger():
    log = SiteLog()

    assert log.record("connected")["event"] == "connected"
    log.close()
